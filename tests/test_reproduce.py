"""Reproduce a run's environment: requirements parsing, env diffs, ``aletheia runs env``."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from google.cloud import firestore, storage
from rich.console import Console
from typer.testing import CliRunner

from aletheia.cli import runs_env
from aletheia.cloud import layout
from aletheia.cloud.config import Settings
from aletheia.data.blobstore import BlobStore
from aletheia.errors import NotFoundError, ValidationError
from aletheia.tracking import envinfo
from aletheia.tracking.envinfo import EnvInfo, PlatformInfo, PythonInfo
from aletheia.tracking.reproduce import diff_env, parse_requirements, render_table

# --------------------------------------------------------------------------- parse_requirements


def test_parse_pip_freeze_style_text() -> None:
    text = """
# recorded by a run
numpy==1.26.4
PyYAML==6.0.1   # inline comment
requests[socks]==2.31.0 ; python_version >= "3.8"
legacy-thing===1.0-custom
-e git+https://github.com/team/lib.git@abc123#egg=lib
--index-url https://pypi.example/simple
mylib @ file:///home/ada/mylib-0.1-py3-none-any.whl
"""
    assert parse_requirements(text) == {
        "numpy": "1.26.4",
        "pyyaml": "6.0.1",
        "requests": "2.31.0",
        "legacy-thing": "1.0-custom",
        "mylib": "@ file:///home/ada/mylib-0.1-py3-none-any.whl",
    }


@pytest.mark.parametrize("line", ["numpy>=1.26", "numpy", "==1.0", "numpy==1.0 extra junk"])
def test_unpinned_or_malformed_lines_are_refused_with_their_line_number(line: str) -> None:
    with pytest.raises(ValidationError, match="line 2 is not pinned"):
        parse_requirements(f"scipy==1.13.0\n{line}\n")


def test_empty_text_is_no_packages() -> None:
    assert parse_requirements("") == {}
    assert parse_requirements("# nothing\n\n") == {}


# --------------------------------------------------------------------------- diff_env


def local_env(packages: dict[str, str], python: str = "3.11.7") -> EnvInfo:
    """A local environment with the given packages (a value, as capture() would build it)."""
    return EnvInfo(
        python=PythonInfo(python, "CPython", "/usr/bin/python3"),
        platform=PlatformInfo("Linux", "6.1", "x86_64"),
        hostname="host",
        packages=packages,
    )


def test_identical_environments() -> None:
    packages = {"numpy": "1.26.4", "torch": "2.3.0"}
    diff = diff_env(dict(packages), "3.11.7", local_env(packages))
    assert diff.matches and diff.identical
    assert (diff.missing, diff.changed, diff.extra, diff.python) == ({}, {}, {}, None)


def test_missing_changed_extra_and_python() -> None:
    recorded = {"numpy": "1.26.4", "torch": "2.3.0", "PyYAML": "6.0.1"}
    here = local_env({"numpy": "2.0.0", "pyyaml": "6.0.1", "rich": "13.7.0"}, python="3.12.1")
    diff = diff_env(recorded, "3.11.7", here)
    assert diff.missing == {"torch": "2.3.0"}
    assert diff.changed == {"numpy": ("1.26.4", "2.0.0")}
    assert diff.extra == {"rich": "13.7.0"}
    assert diff.python == ("3.11.7", "3.12.1")
    assert not diff.matches and not diff.identical


def test_extra_local_packages_still_match() -> None:
    diff = diff_env({"numpy": "1.26.4"}, "3.11.7", local_env({"numpy": "1.26.4", "ipython": "8"}))
    assert diff.matches and not diff.identical
    assert diff.extra == {"ipython": "8"}


def test_other_python_alone_is_a_difference() -> None:
    diff = diff_env({"numpy": "1.26.4"}, "3.10.14", local_env({"numpy": "1.26.4"}))
    assert not diff.matches
    assert diff.python == ("3.10.14", "3.11.7")


def test_unrecorded_python_is_not_a_difference() -> None:
    assert diff_env({}, "", local_env({})).python is None


def test_table_lists_every_difference() -> None:
    recorded = {"numpy": "1.26.4", "torch": "2.3.0"}
    diff = diff_env(recorded, "3.11.7", local_env({"numpy": "2.0.0", "rich": "13"}, "3.12.1"))
    text = render(render_table(diff))
    assert "torch" in text and "missing" in text
    assert "numpy" in text and "1.26.4" in text and "2.0.0" in text and "other version" in text
    assert "python" in text and "3.12.1" in text
    assert "rich" not in text.split("1 extra")[0]  # extras are only counted ...
    assert "rich" in render(render_table(diff, show_extra=True))  # ... unless asked for


def render(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


# --------------------------------------------------------------------------- the CLI


def cli_app() -> typer.Typer:
    """``runs env`` as the runs group mounts it."""
    app = typer.Typer()

    @app.callback()
    def runs() -> None:
        """Runs."""

    app.command("env")(runs_env.env)
    return app


runner = CliRunner()
PROJECT = "vision"
EXPER = "resnet"


def record_run(
    db: firestore.Client,
    gcs: storage.Client,
    settings: Settings,
    run: str,
    requirements: str,
    python: str | dict[str, str],
    *,
    upload: bool = True,
    as_map: bool = True,
) -> str:
    """Write a run document with an ``env`` map and its package-list blob, as a run records them."""
    store = BlobStore(gcs, settings.bucket, PROJECT)
    data = requirements.encode()
    ref = store.put_bytes(data, "text/plain").sha256 if upload else hashlib.sha256(data).hexdigest()
    # a run records the reference as {sha256, uri, size}; a bare digest is read as well
    packages_ref = {"sha256": ref, "uri": store.uri(ref), "size": len(data)} if as_map else ref
    env_doc = {**envinfo.capture().to_doc(), "python": python, "packages_ref": packages_ref}
    db.document(layout.run(PROJECT, EXPER, run)).set({"status": "finished", "env": env_doc})
    return ref


def invoke(*args: str) -> typer.testing.Result:
    return runner.invoke(cli_app(), ["env", *args])


def test_requirements_go_to_stdout(
    stack: Settings, db: firestore.Client, gcs: storage.Client
) -> None:
    text = "numpy==1.26.4\ntorch==2.3.0\n"
    record_run(db, gcs, stack, "1", text, "3.11.7")
    result = invoke("1", "-e", EXPER, "-p", PROJECT)
    assert result.exit_code == 0, result.output
    assert result.stdout == text


def test_requirements_go_to_a_file(
    stack: Settings, db: firestore.Client, gcs: storage.Client, tmp_path: Path
) -> None:
    text = "numpy==1.26.4\n"
    record_run(db, gcs, stack, "2", text, "3.11.7", as_map=False)
    out = tmp_path / "requirements.txt"
    result = invoke("2", "--experiment", EXPER, "--project", PROJECT, "--output", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text() == text
    assert "wrote 1 requirements" in result.stdout


def test_project_comes_from_the_setting(
    stack: Settings,
    db: firestore.Client,
    gcs: storage.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record_run(db, gcs, stack, "3", "numpy==1.26.4\n", "3.11.7")
    monkeypatch.setenv("ALETHEIA_PROJECT", PROJECT)
    result = invoke("3", "-e", EXPER)
    assert result.exit_code == 0, result.output
    assert result.stdout == "numpy==1.26.4\n"


def test_diff_of_the_same_environment_exits_0(
    stack: Settings, db: firestore.Client, gcs: storage.Client
) -> None:
    here = envinfo.capture()
    record_run(db, gcs, stack, "4", here.requirements_text(), here.python.version)
    result = invoke("4", "-e", EXPER, "-p", PROJECT, "--diff")
    assert result.exit_code == 0, result.output
    assert "this environment matches the run" in result.stdout


def test_diff_of_another_environment_exits_1_and_names_the_differences(
    stack: Settings, db: firestore.Client, gcs: storage.Client
) -> None:
    here = envinfo.capture()
    recorded = dict(here.packages)
    recorded["gitpython"] = "0.0.1"
    recorded["not-installed-anywhere"] = "4.2"
    del recorded["typer"]
    text = "".join(f"{n}=={v}\n" for n, v in sorted(recorded.items()))
    record_run(db, gcs, stack, "5", text, {"version": "2.7.18"})  # a map is read too
    result = invoke("5", "-e", EXPER, "-p", PROJECT, "--diff")
    assert result.exit_code == 1, result.output
    for expected in ("not-installed-anywhere", "missing", "gitpython", "0.0.1", "2.7.18"):
        assert expected in result.stdout
    assert "1 extra" in result.stdout  # typer is installed here but was not recorded

    result = invoke("5", "-e", EXPER, "-p", PROJECT, "--diff", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["matches"] is False
    assert data["missing"] == {"not-installed-anywhere": "4.2"}
    assert data["changed"]["gitpython"] == {
        "recorded": "0.0.1",
        "local": here.packages["gitpython"],
    }
    assert data["extra"] == {"typer": here.packages["typer"]}
    assert data["python"] == {"recorded": "2.7.18", "local": here.python.version}


def test_unknown_run_is_a_clear_error(stack: Settings) -> None:
    result = invoke("99", "-e", EXPER, "-p", PROJECT)
    assert result.exit_code != 0
    assert isinstance(result.exception, NotFoundError)
    assert "no run '99' of experiment 'resnet'" in result.exception.message
    assert "aletheia runs list" in (result.exception.hint or "")


def test_run_without_environment_is_a_clear_error(stack: Settings, db: firestore.Client) -> None:
    db.document(layout.run(PROJECT, EXPER, "6")).set({"status": "running"})
    result = invoke("6", "-e", EXPER, "-p", PROJECT)
    assert isinstance(result.exception, NotFoundError)
    assert "has no recorded environment" in result.exception.message


def test_package_list_missing_from_the_bucket(
    stack: Settings, db: firestore.Client, gcs: storage.Client
) -> None:
    record_run(db, gcs, stack, "7", "numpy==1.0\n", "3.11.7", upload=False)
    result = invoke("7", "-e", EXPER, "-p", PROJECT)
    assert isinstance(result.exception, NotFoundError)
    assert "aletheia sync" in (result.exception.hint or "")


def test_bad_run_id_is_refused(stack: Settings) -> None:
    result = invoke("../1", "-e", EXPER, "-p", PROJECT)
    assert isinstance(result.exception, ValidationError)


# --------------------------------------------------------------------------- with real runs


def test_a_tracked_run_can_be_reproduced(stack: Settings, tmp_path: Path) -> None:
    """A run started by the Metastore → `aletheia runs env` gives its packages and no diff."""
    from aletheia.cli import app
    from aletheia.tracking.metastore import Metastore

    exper = Metastore(PROJECT, flush_interval_s=0.2).exper("repro", git_policy="off")
    with exper.start_run(fold=1, repo_path=tmp_path) as run:
        run.add_metric("loss", 0.5)
    here = envinfo.capture()

    result = runner.invoke(app, ["runs", "env", run.id, "-e", "repro", "-p", PROJECT])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "typer==" + here.packages["typer"] in lines  # index packages pinned
    # aletheia runs from a source checkout: written as that source, never as the
    # unrelated `aletheia` package a PyPI name would install.
    assert not any(line.startswith("aletheia==") for line in lines)
    assert any(line.startswith(("aletheia @ ", "-e ")) for line in lines)

    result = runner.invoke(app, ["runs", "env", run.id, "-e", "repro", "-p", PROJECT, "--diff"])
    assert result.exit_code == 0, result.output
    assert "this environment matches the run" in result.stdout


def test_the_console_script_prints_a_clear_error(stack: Settings) -> None:
    aletheia = Path(sys.executable).with_name("aletheia")
    done = subprocess.run(
        [str(aletheia), "runs", "env", "42", "-e", EXPER, "-p", PROJECT],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == NotFoundError.exit_code
    assert "there is no run '42' of experiment 'resnet'" in done.stderr
    assert "hint:" in done.stderr and "Traceback" not in done.stderr
