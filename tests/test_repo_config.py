"""A repository's ``.aletheia/config.toml``: its own settings, never where data or credentials go.

Real temp git repositories, the real CLI in a subprocess (its cwd inside the
repository), and for the run a real training script against the local stack.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from google.cloud import storage

from aletheia.cloud import config, layout, repoconfig
from aletheia.errors import ConfigError
from aletheia.tracking.gitinfo import GitPolicyWarning
from aletheia.tracking.metastore import Metastore

from helpers import git_repo

ALETHEIA = str(Path(sys.executable).with_name("aletheia"))

#: For each setting a repository may not choose, what a malicious repository would write.
ATTACKS: dict[str, str] = {
    "mode": "cloud",
    "cloud_project": "attacker-project",
    "bucket": "attacker-bucket",  # `datasets add` would upload the user's data there
    "firestore_emulator_host": "127.0.0.66:8080",  # tokens and documents sent there
    "storage_emulator_host": "http://127.0.0.66:4443",
    "auth_emulator_host": "127.0.0.66:9099",  # `auth login` would send the password there
    "credentials_file": "/tmp/attacker-key.json",
    "user_credentials": "/tmp/attacker-user.json",
    "firebase_api_key": "AIza-attacker",
    "identity": "server",
    "owner": "attacker-uid",
    "downloads_url": "https://127.0.0.66/download",
    "cache_dir": "/tmp/attacker-cache",
    "stack_dir": "/tmp/attacker-stack",  # its state file would name emulator hosts
    "export_every": "1",
}


def empty_repo(path: Path) -> Path:
    """A real git repository with one (empty) commit."""
    return git_repo(path, {})


def environment_without(*names: str) -> dict[str, str]:
    """This process's environment without ``names`` (so the repository's settings apply)."""
    return {k: v for k, v in os.environ.items() if k not in names}


def write_config(repo: Path, body: str) -> Path:
    path = repo / ".aletheia" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"[aletheia]\n{body}", encoding="utf-8")
    return path


@pytest.fixture()
def resolve_in(monkeypatch: pytest.MonkeyPatch) -> Callable[..., config.Settings]:
    """Settings as a process whose cwd is ``start`` resolves them (no stack; no user file
    unless ``config_file``)."""

    def resolve(
        start: Path,
        env: dict[str, str] | None = None,
        *,
        config_file: Path | None = None,
        **overrides: str,
    ) -> config.Settings:
        monkeypatch.chdir(start)
        return config.resolve(
            overrides,
            env={"ALETHEIA_STACK_DIR": str(start / "no-stack"), **(env or {})},
            config_file=config_file or start / "no-user-config.toml",
        )

    return resolve


def test_repo_settings_sit_between_the_user_file_and_the_environment(
    tmp_path: Path, resolve_in: Callable[..., config.Settings]
) -> None:
    repo = empty_repo(tmp_path / "repo")
    path = write_config(
        repo,
        'project = "churn"\nexperiment = "baseline"\ngit_policy = "strict"\n'
        'snapshot_max_bytes = "1MB"\n',
    )
    user = tmp_path / "user.toml"
    user.write_text(
        '[aletheia]\nproject = "mine"\ngit_policy = "off"\nbucket = "my-bucket"\n', "utf-8"
    )
    (repo / "src" / "deep").mkdir(parents=True)

    s = resolve_in(repo / "src" / "deep", config_file=user)  # found from a subdirectory
    assert (s.project, s.git_policy, s.snapshot_max_bytes) == ("churn", "strict", 1 << 20)
    assert s.experiment == "baseline"
    assert s.sources["project"] == f"repo {path}"
    assert s.sources["snapshot_max_bytes"] == f"repo {path}"
    assert s.bucket == "my-bucket" and s.sources["bucket"] == f"file {user}"  # the user's own

    env = {"ALETHEIA_PROJECT": "override", "ALETHEIA_GIT_POLICY": "warn"}
    s = resolve_in(repo, env, config_file=user)
    assert (s.project, s.git_policy) == ("override", "warn")
    assert s.sources["project"] == "env ALETHEIA_PROJECT"
    assert resolve_in(repo, env, config_file=user, project="arg").project == "arg"


@pytest.mark.parametrize("key", sorted(ATTACKS))
def test_a_repository_cannot_choose_where_data_or_credentials_go(
    tmp_path: Path, key: str, resolve_in: Callable[..., config.Settings]
) -> None:
    repo = empty_repo(tmp_path / "repo")
    path = write_config(repo, f'project = "p"\n{key} = "{ATTACKS[key]}"\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", config.ConfigWarning)
        s = resolve_in(repo)
    assert s.project == "p"  # the rest of the file is used
    assert ATTACKS[key] not in str(getattr(s, key))
    assert not s.sources.get(key, "default").startswith("repo")
    (note,) = [n for n in s.notes if n.startswith(f"{key} in {path} is ignored")]
    assert config.ENV_VARS[key][0] in note and "no-user-config.toml" in note  # where instead
    assert note in [str(w.message) for w in caught if w.category is config.ConfigWarning]


def test_every_setting_is_allowed_or_refused_on_purpose() -> None:
    """A setting added later is refused in a repository until it is allowed deliberately."""
    assert set(repoconfig.REPO_SETTINGS) | set(ATTACKS) == set(config.ENV_VARS)
    assert set(repoconfig.REFUSED_WHY) == set(ATTACKS)


def test_a_malicious_repository_leaves_the_users_target_alone(
    tmp_path: Path, resolve_in: Callable[..., config.Settings]
) -> None:
    """Everything at once, with the user's own target configured: nothing moves."""
    repo = empty_repo(tmp_path / "repo")
    write_config(repo, "".join(f'{k} = "{v}"\n' for k, v in ATTACKS.items()))
    user = tmp_path / "user.toml"
    user.write_text('[aletheia]\nbucket = "my-bucket"\n', "utf-8")
    env = {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:7001", "STORAGE_EMULATOR_HOST": "127.0.0.1:7002"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", config.ConfigWarning)
        s = resolve_in(repo, env, config_file=user)
    assert s.mode == "local" and s.cloud_project == config.LOCAL_CLOUD_PROJECT
    assert s.bucket == "my-bucket"
    assert s.firestore_emulator_host == "127.0.0.1:7001"
    assert s.storage_emulator_host == "http://127.0.0.1:7002"
    assert s.auth_emulator_host is None and s.credentials_file is None and s.owner is None
    assert s.identity == "auto" and s.firebase_api_key is None and s.downloads_url is None
    assert len(s.notes) == len(ATTACKS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('projet = "x"\n', "unknown setting.*projet.*may set: project, experiment, git_policy"),
        ("project = 3\n", "'project' in .*config.toml must be a string"),
        ('project = "a/b"\n', "invalid project name 'a/b'.*config.toml"),
        ('experiment = ".."\n', "invalid experiment name '..'.*config.toml"),
        ('git_policy = "sometimes"\n', "git_policy is 'sometimes' \\(repo .*config.toml\\)"),
        ('snapshot_max_bytes = "lots"\n', "snapshot_max_bytes is 'lots' \\(repo "),
        ("project = [\n", "not valid TOML"),
    ],
)
def test_a_bad_repository_config_names_the_file_and_the_fix(
    tmp_path: Path, body: str, message: str, resolve_in: Callable[..., config.Settings]
) -> None:
    repo = empty_repo(tmp_path / "repo")
    write_config(repo, body)
    with pytest.raises(ConfigError, match=message):
        resolve_in(repo)


def test_only_the_git_roots_config_is_read(
    tmp_path: Path, resolve_in: Callable[..., config.Settings]
) -> None:
    """A ``.aletheia/config.toml`` above the repository (say in /tmp) is nobody's to trust."""
    write_config(tmp_path, 'project = "stray"\n')
    repo = empty_repo(tmp_path / "repo")
    assert resolve_in(repo).project == config.DEFAULT_PROJECT
    assert resolve_in(tmp_path).project == config.DEFAULT_PROJECT  # not a repository at all
    # A library caller may name the repository instead of relying on the cwd.
    write_config(repo, 'project = "named"\n')
    env = {"ALETHEIA_STACK_DIR": str(tmp_path / "no-stack")}
    named = config.resolve(env=env, config_file=tmp_path / "none.toml", repo_dir=repo / ".git")
    assert named.project == "named"


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real ``aletheia`` command, run with ``cwd`` as its current directory."""
    full = environment_without("ALETHEIA_PROJECT")
    full.update(
        ALETHEIA_CONFIG=str(cwd / "no-user-config.toml"),
        ALETHEIA_STACK_DIR=str(cwd / "no-stack"),
        COLUMNS="300",
        **(env or {}),
    )
    return subprocess.run(
        [ALETHEIA, *args], cwd=cwd, env=full, capture_output=True, text=True, check=False
    )


def test_config_command_shows_the_repository_and_the_refused_keys(tmp_path: Path) -> None:
    repo = empty_repo(tmp_path / "repo")
    path = write_config(repo, 'project = "churn"\nbucket = "attacker-bucket"\n')
    (repo / "notebooks").mkdir()
    shown = cli(repo / "notebooks", "config")
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"│ project +│ churn +│ repo {re.escape(str(path))} +│", shown.stdout)
    assert "attacker-bucket" not in shown.stdout.split("warning:")[0]
    assert f"bucket in {path} is ignored" in " ".join(shown.stdout.split())

    write_config(repo, 'bukcet = "x"\n')
    refused = cli(repo, "config")
    assert refused.returncode == 2
    assert "unknown setting(s)" in refused.stderr and "bukcet" in refused.stderr


def run_in_repo(repo: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``script`` run as ``train.py`` in ``repo`` by a fresh interpreter; it must succeed."""
    (repo / "train.py").write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done


TRAIN = """
from aletheia import Metastore

with Metastore().exper().start_run() as run:  # project and experiment: the repository's
    run.add_metric("loss", 0.5, step=1)
print(run.id)
"""


@pytest.mark.filterwarnings(f"ignore::{GitPolicyWarning.__module__}.GitPolicyWarning")
def test_a_run_started_in_the_repository_lands_in_its_project(
    stack: config.Settings, tmp_path: Path
) -> None:
    repo = empty_repo(tmp_path / "repo")
    write_config(repo, 'project = "from-repo"\nexperiment = "train"\nbucket = "attacker-bucket"\n')
    env = environment_without("ALETHEIA_PROJECT")

    done = run_in_repo(repo, TRAIN, env)
    run_id = done.stdout.strip()
    assert "bucket in" in done.stderr and "is ignored" in done.stderr  # warned, not used
    ms = Metastore("from-repo", settings=stack)
    assert ms.experiment("train").run(run_id).metrics["loss"] == 0.5
    assert ms.db.document(layout.run("from-repo", "train", run_id)).get().exists
    assert not Metastore(config.DEFAULT_PROJECT, settings=stack).experiments()

    # The environment still wins over the repository.
    env["ALETHEIA_PROJECT"] = "from-env"
    done = run_in_repo(repo, TRAIN, env)
    view = Metastore("from-env", settings=stack).experiment("train").run(done.stdout.strip())
    assert view.metrics["loss"] == 0.5


def test_datasets_add_in_a_malicious_repository_uploads_to_the_users_bucket_only(
    stack: config.Settings, gcs: storage.Client, tmp_path: Path
) -> None:
    """The attack itself: a cloned repository names its author's (existing) bucket."""
    attacker = gcs.create_bucket("attacker-bucket")
    try:
        repo = empty_repo(tmp_path / "repo")
        write_config(repo, 'project = "from-repo"\nbucket = "attacker-bucket"\n')
        data = repo / "data" / "private"
        data.mkdir(parents=True)
        (data / "secrets.csv").write_bytes(b"name,salary\nann,100\n")
        # The bucket comes from the running stack's state file, as for a user who never set it.
        unset = ("ALETHEIA_BUCKET", "ALETHEIA_PROJECT")
        env = environment_without(*unset)

        done = subprocess.run(
            [ALETHEIA, "datasets", "add", "private", "data/private", "--json"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert "warning: bucket in" in " ".join(done.stderr.split())
        assert list(attacker.list_blobs()) == []
        assert list(gcs.bucket(stack.bucket).list_blobs())  # the user's own bucket has the data
        pins = json.loads((repo / ".aletheia" / "datasets.lock").read_text(encoding="utf-8"))
        assert pins["projects"]["from-repo"]["private"]["version"] == "v1"  # the repo's project
    finally:
        for blob in attacker.list_blobs():
            blob.delete()
        attacker.delete()


MLFLOW_TRAIN = """
import mlflow

mlflow.set_tracking_uri("aletheia://")  # no project: the repository's
mlflow.set_experiment("mlflow-train")
with mlflow.start_run() as run:
    mlflow.log_metric("loss", 0.25)
print(run.info.run_id)
"""


def test_an_mlflow_program_in_the_repository_logs_to_its_project(
    stack: config.Settings, tmp_path: Path
) -> None:
    repo = empty_repo(tmp_path / "repo")
    write_config(repo, 'project = "from-repo"\n')
    run_in_repo(repo, MLFLOW_TRAIN, environment_without("ALETHEIA_PROJECT"))
    (exper,) = Metastore("from-repo", settings=stack).experiments()
    assert exper.name == "mlflow-train"
    (run,) = exper.runs()
    assert run.metrics["loss"] == 0.25
