"""A run's environment, from where its packages came from to a rebuilt venv, with real pip.

A training script runs in a fresh venv holding packages of every origin,
installed by pip from local sources only (no network): an editable package
inside the repository, an editable one from another git repository with a
remote, one from a ``git+file://`` URL and one from a wheel file. Each is
built by a tiny in-tree PEP 517 backend, so pip writes the real PEP 610
``direct_url.json`` records. Then ``runs env`` must write each as its
source, ``runs checkout`` + ``env create`` must rebuild a venv in which the
checked-out training gives the same metric.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import aletheia
from aletheia.cli import app
from aletheia.cloud import config
from aletheia.tracking import envcreate
from aletheia.tracking.metastore import Metastore

runner = CliRunner()
P = "envrepro"

BACKEND = """
import base64, hashlib, os, zipfile
HERE = os.path.dirname(os.path.abspath(__file__))
NAME = open(os.path.join(HERE, "NAME")).read().strip()
VERSION = "0.1"


def _line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _wheel(directory, files):
    dist = f"{NAME}-{VERSION}.dist-info"
    meta = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"
    files[f"{dist}/METADATA"] = meta.encode()
    wheel = "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    files[f"{dist}/WHEEL"] = wheel.encode()
    record = [_line(k, v) for k, v in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as z:
        for arcname, data in files.items():
            z.writestr(arcname, data)
    return name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open(os.path.join(HERE, NAME, "__init__.py"), "rb") as fh:
        return _wheel(wheel_directory, {f"{NAME}/__init__.py": fh.read()})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {f"__editable__{NAME}.pth": (HERE + "\\n").encode()})


def get_requires_for_build_wheel(config_settings=None):
    return []


get_requires_for_build_editable = get_requires_for_build_wheel
"""
PYPROJECT = """[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
"""

TRAIN = """
import helpers, inrepo, localpkg, vcspkg, wheelpkg
from aletheia.tracking.metastore import Metastore

loss = helpers.X + inrepo.VALUE + localpkg.VALUE + vcspkg.VALUE + wheelpkg.VALUE
with Metastore("envrepro", flush_interval_s=0.2).exper("train").start_run(repo_path=".") as run:
    run.add_metric("loss", loss)
print(run.id)
"""


def sh(*cmd: str | Path, cwd: Path | None = None, env: dict | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=env or _env()
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_INDEX_URL")}
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
        PIP_NO_INDEX="1",  # never the network
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def package(where: Path, name: str, value: int) -> Path:
    where.mkdir(parents=True)
    (where / "NAME").write_text(name)
    (where / "backend.py").write_text(BACKEND)
    (where / "pyproject.toml").write_text(PYPROJECT)
    (where / name).mkdir()
    (where / name / "__init__.py").write_text(f"VALUE = {value}\n")
    return where


def git_repo(path: Path) -> Path:
    sh("git", "init", "-q", "-b", "main", path)
    sh("git", "add", ".", cwd=path)
    sh("git", "commit", "-qm", "one", cwd=path)
    return path


def venv_with_aletheia(path: Path) -> Path:
    """A new venv that can import this aletheia and its dependencies (via a .pth), whose
    pip is this environment's (ensurepip's older one cannot parse ``git+file:///`` URLs)."""
    sh(sys.executable, "-m", "venv", "--without-pip", path)
    python = path / "bin" / "python"
    site = sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    here = Path(aletheia.__file__).resolve().parents[1]
    shared = sysconfig.get_paths()["purelib"]
    (Path(site) / "zz_aletheia.pth").write_text(f"{here}\n{shared}\n")
    return python


@pytest.fixture(scope="module")
def world(
    module_stack: config.Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """The venv, the packages of every origin, and a training run made with them: built once
    for the module (a venv and four pip installs take tens of seconds); the tests read it, or
    add a checkout, a venv and a run beside it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("NO_COLOR", "1")
        monkeypatch.setenv("COLUMNS", "300")
        yield _world(tmp_path_factory.mktemp("world"))


def _world(tmp_path: Path) -> dict:
    python = venv_with_aletheia(tmp_path / "venv-a")
    local = git_repo(package(tmp_path / "localpkg", "localpkg", 10))
    sh("git", "init", "-q", "--bare", "-b", "main", tmp_path / "localpkg-origin.git")
    sh("git", "remote", "add", "origin", tmp_path / "localpkg-origin.git", cwd=local)
    sh("git", "push", "-q", "origin", "main", cwd=local)
    vcs = git_repo(package(tmp_path / "vcspkg", "vcspkg", 100))
    wheelsrc = package(tmp_path / "wheelpkg", "wheelpkg", 1000)
    wheels = tmp_path / "wheels"
    sh(python, "-m", "pip", "wheel", "--no-deps", "-w", wheels, wheelsrc)
    repo = tmp_path / "repo"
    package(repo / "inrepo", "inrepo", 1)
    (repo / "train.py").write_text(TRAIN)
    local_commit = sh("git", "rev-parse", "HEAD", cwd=local).strip()
    vcs_commit = sh("git", "rev-parse", "HEAD", cwd=vcs).strip()
    wheel = next(wheels.glob("wheelpkg-*.whl"))
    # The repository says how to build its environment (env create finds this file).
    # (#egg= forms: the venv env create makes has ensurepip's pip, which reads no
    # `name @ git+file:///` line.)
    (repo / "requirements.txt").write_text(
        "-e ./inrepo\n"
        f"git+file://{tmp_path}/localpkg-origin.git@{local_commit}#egg=localpkg\n"
        f"git+file://{vcs}@{vcs_commit}#egg=vcspkg\n"
        f"{wheel}\n"
    )
    git_repo(repo)
    (repo / "helpers.py").write_text("X = 0.5\n")  # untracked, imported by train.py
    pip = [python, "-m", "pip", "install", "-q"]
    sh(*pip, "-e", repo / "inrepo")
    sh(*pip, "-e", local)
    sh(*pip, f"vcspkg @ git+file://{vcs}@{vcs_commit}")
    sh(*pip, wheel)
    run_id = sh(python, "train.py", cwd=repo).strip().splitlines()[-1]
    return {
        "tmp": tmp_path,
        "repo": repo,
        "run": run_id,
        "local_commit": local_commit,
        "vcs": vcs,
        "vcs_commit": vcs_commit,
        "wheel": wheel,
    }


def cli(*args: str) -> str:
    result = runner.invoke(app, [*args, "-p", P])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_runs_env_writes_every_package_as_its_source(world: dict) -> None:
    run, tmp = world["run"], world["tmp"]
    lines = cli("runs", "env", run, "-e", "train").splitlines()
    assert "-e ./inrepo" in lines  # inside the run's repository: relative to its root
    origin = (tmp / "localpkg-origin.git").resolve().as_uri()  # its remote, at its commit
    assert f"localpkg @ git+{origin}@{world['local_commit']}" in lines
    assert f"vcspkg @ git+file://{world['vcs']}@{world['vcs_commit']}" in lines
    assert f"wheelpkg @ {world['wheel'].as_uri()}" in lines
    assert not any(line.startswith("aletheia==") for line in lines)  # not PyPI's aletheia
    imported = cli("runs", "env", run, "-e", "train", "--imported").splitlines()
    for name in ("inrepo", "localpkg", "vcspkg", "wheelpkg", "aletheia"):
        assert any(name in line for line in imported), name
    assert not any(line.startswith("pip==") for line in imported)  # installed, never imported
    assert any(line.startswith("pip==") for line in lines)
    conda = cli("runs", "env", run, "-e", "train", "--format", "conda")
    assert f"  - python={sys.version.split()[0]}" in conda and '    - "-e ./inrepo"' in conda
    docker = cli("runs", "env", run, "-e", "train", "--format", "dockerfile")
    assert docker.splitlines()[1 + docker.count("# note")].startswith("FROM python:3")
    assert "apt-get install" in docker and "'-e' " not in docker and "-e './inrepo'" in docker


def test_checkout_then_env_create_rebuilds_a_venv_that_trains_the_same(world: dict) -> None:
    run, tmp = world["run"], world["tmp"]
    original = Metastore(P).exper("train").run(run).metrics["loss"]
    assert original == 1111.5
    cli("runs", "checkout", run, "-e", "train", "--to", str(tmp / "co"))
    result = runner.invoke(
        app,
        [
            "env",
            "create",
            run,
            "-e",
            "train",
            "-p",
            P,
            "--venv",
            str(tmp / "venv-b"),
            "--path",
            str(tmp / "co"),
            "--pip-arg=--no-index",
            "--json",
        ],
    )
    assert result.exit_code == 0, f"{result.output}{result.exception}"
    report = json.loads(result.stdout)
    assert report["source"] == "requirements.txt"
    differences = report["differences"]
    # The four packages of the run's own code are back, in the recorded versions ...
    for name in ("inrepo", "localpkg", "vcspkg", "wheelpkg"):
        assert name not in differences["missing"] and name not in differences["changed"]
    # ... and what the requirements did not name (the tracker's own stack) is reported.
    assert "google-cloud-firestore" in differences["missing"]
    # Give the new venv the tracker (no network here), then train again in the checkout.
    python_b = tmp / "venv-b" / "bin" / "python"
    site = sh(python_b, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    here = Path(aletheia.__file__).resolve().parents[1]
    (Path(site.strip()) / "zz_aletheia.pth").write_text(
        f"{here}\n{sysconfig.get_paths()['purelib']}\n"
    )
    again = sh(python_b, "train.py", cwd=tmp / "co").strip().splitlines()[-1]
    assert Metastore(P).exper("train").run(again).metrics["loss"] == original


def test_detection_order_and_pipfiles(tmp_path: Path) -> None:
    assert envcreate.detect(tmp_path).kind == envcreate.RECORDED
    (tmp_path / "environment.yml").write_text("name: x\n")
    assert envcreate.detect(tmp_path).kind == envcreate.CONDA
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    assert envcreate.detect(tmp_path).kind == envcreate.PYPROJECT
    (tmp_path / "Pipfile").write_text(
        '[packages]\nnumpy = "==1.26.4"\nrich = "*"\nmine = {path = ".", editable = true}\n'
        'tool = {git = "https://example.org/tool.git", ref = "abc123"}\n'
    )
    found = envcreate.detect(tmp_path)
    assert found.kind == envcreate.PIPFILE
    assert envcreate.pipfile_requirements(found.file) == [
        "-e .",
        "numpy==1.26.4",
        "rich",
        "tool @ git+https://example.org/tool.git@abc123",
    ]
    (tmp_path / "requirements.txt").write_text("rich\n")
    assert envcreate.detect(tmp_path).kind == envcreate.REQUIREMENTS
