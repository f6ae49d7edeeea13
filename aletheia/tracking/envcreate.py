"""Build a run's environment in a new virtualenv (or conda env), then say what still differs.

:func:`detect` picks what to install from, in the directory of the code
(a ``runs checkout``), in this order: ``requirements.txt``, ``Pipfile.lock``
/ ``Pipfile``, ``pyproject.toml`` (the project itself, editable, with its
dependencies), ``environment.yml`` (conda); with none of them, the run's
recorded environment (:mod:`aletheia.tracking.envfile`). :func:`create`
builds it with ``python -m venv`` and that venv's pip (or ``conda env
create -p``), run from that directory so relative paths (``-e ./pkg``) mean
the code's; then reads the new environment's packages and compares them with
the ones the run recorded (:func:`aletheia.tracking.reproduce.diff_env`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - python 3.10
    import tomli as tomllib

from aletheia.errors import ConfigError, ConflictError, EnvironmentBuildError, ValidationError
from aletheia.tracking.envinfo import EnvInfo, PlatformInfo, PythonInfo
from aletheia.tracking.reproduce import EnvDiff, diff_env

REQUIREMENTS, PIPFILE, PYPROJECT, CONDA, RECORDED = (
    "requirements.txt",
    "Pipfile",
    "pyproject.toml",
    "environment.yml",
    "recorded",
)
#: Last lines of a failed tool's output kept in the error.
_TAIL = 25


@dataclass(frozen=True)
class Source:
    """What the environment is built from: ``kind`` and its file (None: the run's record)."""

    kind: str
    file: Path | None


@dataclass
class Created:
    """A built environment: where, from what, and how it differs from the run's."""

    path: Path
    source: Source
    python: str
    diff: EnvDiff
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": str(self.path),
            "source": self.source.kind,
            "file": str(self.source.file) if self.source.file else None,
            "python": self.python,
            "differences": self.diff.to_dict(),
            "notes": self.notes,
        }


def detect(code_dir: Path) -> Source:
    """The first environment file found in ``code_dir`` (see the module docstring)."""
    candidates = [
        (REQUIREMENTS, "requirements.txt"),
        (PIPFILE, "Pipfile.lock"),
        (PIPFILE, "Pipfile"),
        (PYPROJECT, "pyproject.toml"),
        (CONDA, "environment.yml"),
        (CONDA, "environment.yaml"),
    ]
    for kind, name in candidates:
        if (code_dir / name).is_file():
            return Source(kind, code_dir / name)
    return Source(RECORDED, None)


def pipfile_requirements(path: Path) -> list[str]:
    """Requirement lines from ``Pipfile.lock`` (exact pins) or ``Pipfile`` (its ``[packages]``)."""
    try:
        if path.name == "Pipfile.lock":
            data = json.loads(path.read_text(encoding="utf-8"))
            return [_pip_line(name, spec) for name, spec in sorted(data["default"].items())]
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return [_pip_line(n, s) for n, s in sorted((data.get("packages") or {}).items())]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"{path} cannot be read: {exc}", "fix it, or remove it") from exc


def _pip_line(name: str, spec: Any) -> str:
    if isinstance(spec, str):
        return name if spec.strip() in ("", "*") else f"{name}{spec}"
    if not isinstance(spec, dict):
        raise TypeError(f"{name}: {spec!r}")
    if "path" in spec:
        return f"-e {spec['path']}" if spec.get("editable") else str(spec["path"])
    if "git" in spec:
        ref = spec.get("ref") or spec.get("rev")
        return f"{name} @ git+{spec['git']}" + (f"@{ref}" if ref else "")
    version = spec.get("version") or ""
    return name if version in ("", "*") else f"{name}{version}"


def create(
    venv: Path,
    code_dir: Path,
    source: Source,
    recorded_text: str | None,
    recorded_packages: dict[str, str],
    recorded_python: str,
    *,
    python: str | None = None,
    pip_args: list[str] | tuple[str, ...] = (),
) -> Created:
    """Build the environment at ``venv`` from ``source`` and compare it with the run's.

    ``recorded_text``: the run's installable requirements (used for
    :data:`RECORDED`). ``pip_args`` go to every ``pip install`` (e.g.
    ``--no-index --find-links DIR``).
    """
    if venv.exists() and any(venv.iterdir()):
        raise ConflictError(f"{venv} exists and is not empty", "choose a new directory")
    notes: list[str] = []
    if source.kind == CONDA:
        interpreter = _conda(venv, source, code_dir)
    else:
        interpreter = _venv(venv, python or sys.executable)
        requirements = _requirements_file(venv, source, recorded_text)
        args = ["-e", "."] if source.kind == PYPROJECT else ["-r", str(requirements)]
        _run(
            [
                str(interpreter),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                *pip_args,
                *args,
            ],
            code_dir,
            "pip install",
        )
    here = _read_env(interpreter)
    if recorded_python and recorded_python != here.python.version:
        notes.append(
            f"the run used python {recorded_python}; this environment has {here.python.version} "
            "(pass --python with that interpreter)"
        )
    diff = diff_env(recorded_packages, recorded_python, here)
    return Created(venv.resolve(), source, here.python.version, diff, notes)


def _venv(venv: Path, python: str) -> Path:
    _run([python, "-m", "venv", str(venv)], None, "python -m venv")
    bindir = "Scripts" if os.name == "nt" else "bin"
    return venv / bindir / ("python.exe" if os.name == "nt" else "python")


def _conda(venv: Path, source: Source, code_dir: Path) -> Path:
    conda = shutil.which("conda") or shutil.which("mamba") or shutil.which("micromamba")
    if conda is None:
        raise ConfigError(
            f"{source.file} is a conda environment, and no conda, mamba or micromamba is on PATH",
            "install one of them, or give a requirements.txt",
        )
    _run([conda, "env", "create", "-y", "-p", str(venv), "-f", str(source.file)], code_dir, "conda")
    return venv / "bin" / "python"


def _requirements_file(venv: Path, source: Source, recorded_text: str | None) -> Path:
    """The file ``pip install -r`` reads for ``source`` (written into the venv when made here)."""
    if source.kind == REQUIREMENTS and source.file is not None:
        return source.file.resolve()
    if source.kind == PIPFILE and source.file is not None:
        text = "\n".join(pipfile_requirements(source.file)) + "\n"
    elif source.kind == RECORDED:
        if not recorded_text:
            raise ValidationError("the run recorded no environment", "give a requirements.txt")
        text = recorded_text
    else:
        return Path()  # pyproject: installed as the project itself
    out = venv / "aletheia-requirements.txt"
    out.write_text(text, encoding="utf-8")
    return out


def _read_env(interpreter: Path) -> EnvInfo:
    """The new environment's python and packages, read by its own interpreter.

    That interpreter loads :mod:`aletheia.tracking.envinfo` (standard library
    only) straight from this installation's file: nothing of aletheia needs
    to be installed there, and the scan is the one runs record with.
    """
    from aletheia.tracking import envinfo

    code = (
        "import importlib.util, json, platform, sys\n"
        f"spec = importlib.util.spec_from_file_location('_envinfo', {envinfo.__file__!r})\n"
        "mod = sys.modules['_envinfo'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "print(json.dumps({'python': platform.python_version(),"
        " 'implementation': platform.python_implementation(),"
        " 'packages': mod.installed_packages()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = _run([str(interpreter), "-c", code], None, "reading the new environment", env=env)
    data = json.loads(out.strip().splitlines()[-1])
    return EnvInfo(
        python=PythonInfo(data["python"], data["implementation"], str(interpreter)),
        platform=PlatformInfo("", "", ""),
        hostname="",
        packages=data["packages"],
    )


def _run(cmd: list[str], cwd: Path | None, what: str, *, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    except OSError as exc:
        raise EnvironmentBuildError(
            f"{what} could not start: {exc}", "check the interpreter"
        ) from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-_TAIL:])
        raise EnvironmentBuildError(
            f"{what} failed (exit {proc.returncode}):\n{tail}",
            "fix what it says (a package that no index has: install it by hand), then run again",
        )
    return proc.stdout
