"""Settings precedence: argument > environment > config file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from aletheia.cloud import config
from aletheia.errors import ConfigError


@pytest.fixture()
def cfg_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        '[aletheia]\nbucket = "from-file"\ncache_dir = "/tmp/file-cache"\n'
        'git_policy = "strict"\nproject = "file-project"\n'
    )
    return path


def _resolve(env: dict[str, str], path: Path, **overrides: object) -> config.Settings:
    # An empty stack dir keeps a developer's running stack out of these tests.
    env = {"ALETHEIA_STACK_DIR": str(path.parent / "no-stack"), **env}
    return config.resolve(overrides, env=env, config_file=path)


def test_argument_beats_env_beats_file_beats_default(cfg_file: Path) -> None:
    env = {"ALETHEIA_BUCKET": "from-env", "ALETHEIA_CACHE_DIR": "/tmp/env-cache"}
    s = _resolve(env, cfg_file, bucket="from-arg")
    assert s.bucket == "from-arg"
    assert s.sources["bucket"] == "argument"
    assert s.cache_dir == Path("/tmp/env-cache")
    assert s.sources["cache_dir"] == "env ALETHEIA_CACHE_DIR"
    assert s.git_policy == "strict"
    assert s.sources["git_policy"] == f"file {cfg_file}"
    assert s.project == "file-project"
    assert s.cloud_project == config.LOCAL_CLOUD_PROJECT
    assert "cloud_project" not in s.sources


def test_none_arguments_fall_through(cfg_file: Path) -> None:
    s = _resolve({}, cfg_file, bucket=None)
    assert s.bucket == "from-file"


def test_aletheia_variable_beats_standard_google_variable(tmp_path: Path) -> None:
    env = {
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1",
        "ALETHEIA_FIRESTORE_EMULATOR_HOST": "127.0.0.1:2",
    }
    s = _resolve(env, tmp_path / "none.toml")
    assert s.firestore_emulator_host == "127.0.0.1:2"


def test_defaults_with_nothing_configured_target_the_local_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no ADC file there
    s = _resolve({}, tmp_path / "none.toml")
    assert s.mode == "local"
    assert s.uses_emulators
    assert s.bucket == config.LOCAL_BUCKET
    assert s.project == config.DEFAULT_PROJECT
    assert s.git_policy == "warn"


def test_cloud_project_with_credentials_selects_cloud(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text("{}")
    env = {"GOOGLE_CLOUD_PROJECT": "acme-ml", "GOOGLE_APPLICATION_CREDENTIALS": str(key)}
    s = _resolve(env, tmp_path / "none.toml")
    assert s.mode == "cloud"
    assert s.bucket == "acme-ml-aletheia"
    assert s.firestore_emulator_host is None
    assert s.credentials_file == key


def test_emulator_host_wins_over_credentials(tmp_path: Path) -> None:
    env = {
        "GOOGLE_CLOUD_PROJECT": "acme-ml",
        "GOOGLE_APPLICATION_CREDENTIALS": "/k.json",
        "STORAGE_EMULATOR_HOST": "127.0.0.1:9",
    }
    s = _resolve(env, tmp_path / "none.toml")
    assert s.mode == "local"
    assert s.storage_emulator_host == "http://127.0.0.1:9"


def test_running_stack_state_fills_emulator_hosts(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / config.STACK_STATE_FILE).write_text(
        '{"env": {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:7001",'
        ' "STORAGE_EMULATOR_HOST": "http://127.0.0.1:7002"}}'
    )
    s = _resolve({"ALETHEIA_STACK_DIR": str(stack)}, tmp_path / "none.toml")
    assert s.firestore_emulator_host == "127.0.0.1:7001"
    assert s.storage_emulator_host == "http://127.0.0.1:7002"
    assert s.sources["firestore_emulator_host"].startswith("local stack")


def test_cloud_mode_without_project_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no cloud project"):
        _resolve({"ALETHEIA_MODE": "cloud"}, tmp_path / "none.toml")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[aletheia\n", "not valid TOML"),
        ('[aletheia]\nbukcet = "x"\n', "unknown setting"),
        ('[aletheia]\nmode = "remote"\n', "choose one of"),
        ("aletheia = 3\n", "must be a table"),
    ],
)
def test_bad_config_file_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        _resolve({}, path)


def test_unknown_argument_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        _resolve({}, tmp_path / "none.toml", bukcet="x")


def test_invalid_env_value_names_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ALETHEIA_GIT_POLICY"):
        _resolve({"ALETHEIA_GIT_POLICY": "sometimes"}, tmp_path / "none.toml")


def test_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    # A regular file whose read fails even for root (EIO at offset 0).
    env = {"ALETHEIA_STACK_DIR": str(tmp_path / "no-stack")}
    with pytest.raises(ConfigError, match="cannot be read"):
        config.resolve({}, env=env, config_file=Path("/proc/self/mem"))
