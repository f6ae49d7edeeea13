"""A new project's repository: the cookiecutter-data-science layout, data kept out of git.

``aletheia init`` writes it. The layout follows cookiecutter-data-science
(``data/{raw,interim,processed,external}``, ``notebooks/``, ``models/``,
``reports/figures/``, ``references/``, ``src/PACKAGE/``), with ``/data/``
git-ignored from the start (datasets live in the bucket and come back with
``aletheia datasets pull``), an empty ``.aletheia/datasets.lock`` for the
pins, ``.aletheia/config.toml`` naming the aletheia project (the
repository's settings, :mod:`aletheia.cloud.repoconfig`), a
``pyproject.toml`` so ``aletheia env create`` can build the environment,
and ``git init``. A directory that is not empty is refused
unless forced; forced, files already there are kept as they are.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from aletheia.cloud import repoconfig
from aletheia.data.lockfile import LockFile, lock_path
from aletheia.errors import ConfigError, ValidationError

#: Templates ``init`` knows.
TEMPLATES = ("ds",)

_DIRS = (
    "data/raw",
    "data/interim",
    "data/processed",
    "data/external",
    "notebooks",
    "models",
    "reports/figures",
    "references",
)
#: Kept out of git: the data (in the bucket), caches, environments, notebook checkpoints.
IGNORED = (
    "/data/",
    "__pycache__/",
    "*.py[cod]",
    ".ipynb_checkpoints/",
    ".venv/",
    "*.egg-info/",
)


@dataclass(frozen=True)
class InitResult:
    """What ``init`` wrote."""

    root: Path
    package: str
    #: The aletheia project the repository's config names.
    project: str
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    git_initialised: bool = False


def package_name(directory: Path) -> str:
    """A Python package name made from a directory name (``My Project`` → ``my_project``)."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", directory.name).strip("_").lower() or "project"
    return f"p_{name}" if name[0].isdigit() else name


def project_name(directory: Path) -> str:
    """The aletheia project a new repository names by default (``My Project`` → ``my-project``)."""
    return package_name(directory).replace("_", "-")


def init_project(
    root: Path, *, template: str = "ds", force: bool = False, project: str | None = None
) -> InitResult:
    """Write the ``template`` skeleton into ``root`` (created if missing) and ``git init`` it.

    ``project`` is the aletheia project ``.aletheia/config.toml`` names (default:
    from the directory's name, as :func:`project_name`).
    """
    if template not in TEMPLATES:
        raise ValidationError(
            f"unknown template {template!r}", f"choose one of: {', '.join(TEMPLATES)}"
        )
    root = Path(root).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ValidationError(f"{root} is a file", "pass a directory")
    if root.exists() and any(root.iterdir()) and not force:
        raise ValidationError(
            f"{root} is not empty",
            "run `aletheia init` in a new or empty directory, or pass --force "
            "(files already there are kept)",
        )
    if shutil.which("git") is None:
        raise ConfigError("git is not installed", "install git, then run `aletheia init` again")
    package = package_name(root)
    project = project if project is not None else project_name(root)
    repo_config = repoconfig.template(project)  # a bad name is refused before anything is written
    created: list[str] = []
    kept: list[str] = []
    for rel in _DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    files = _files(root.name, package)
    files[f"{repoconfig.REPO_DIR}/{repoconfig.REPO_CONFIG_NAME}"] = repo_config
    for rel, text in files.items():
        path = root / rel
        if path.exists():
            kept.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        created.append(rel)
    _ignore(root / ".gitignore", created, kept)
    lock = lock_path(root)
    rel_lock = lock.relative_to(root).as_posix()
    if lock.exists():
        kept.append(rel_lock)
    else:
        LockFile(lock).save()  # empty: `datasets add` inside the repository pins here
        created.append(rel_lock)
    fresh_git = not (root / ".git").exists()
    if fresh_git:
        done = subprocess.run(["git", "init", "-q"], cwd=root, capture_output=True, text=True)
        if done.returncode != 0:
            raise ConfigError(f"git init failed in {root}: {done.stderr.strip()}")
    return InitResult(root, package, project, sorted(created), sorted(kept), fresh_git)


def _ignore(path: Path, created: list[str], kept: list[str]) -> None:
    """Write ``.gitignore``, or add to an existing one the lines it lacks (``/data/`` first)."""
    if not path.exists():
        path.write_text("\n".join(IGNORED) + "\n", encoding="utf-8")
        created.append(".gitignore")
        return
    text = path.read_text(encoding="utf-8")
    present = {line.strip() for line in text.splitlines()}
    missing = [line for line in IGNORED if line not in present]
    if missing:
        lead = "" if not text or text.endswith("\n") else "\n"
        path.write_text(text + lead + "\n".join(missing) + "\n", encoding="utf-8")
    kept.append(".gitignore")


def _files(title: str, package: str) -> dict[str, str]:
    keep = "# kept so git records the directory\n"
    return {
        "README.md": f"""# {title}

Layout (cookiecutter-data-science):

```
data/raw/         the original, immutable data (git-ignored: versioned with aletheia)
data/interim/     intermediate data
data/processed/   the data sets for modelling
data/external/    data from third parties
notebooks/        Jupyter notebooks
models/           trained models
reports/figures/  generated figures
references/       data dictionaries, manuals, papers
src/{package}/    the project's code
.aletheia/        config.toml: this repository's aletheia settings (its project name)
                  datasets.lock: the dataset versions this commit uses
```

Runs and datasets started in this repository go to the aletheia project named
in `.aletheia/config.toml` (`ALETHEIA_PROJECT` or `--project` override it). It
may set only the project's own settings (project, experiment, git_policy,
snapshot_max_bytes): where data and credentials go is each user's own
setting (`~/.config/aletheia/config.toml` or the environment). `aletheia config`
shows every value and where it came from.

Data lives in the bucket, not in git:

```
aletheia datasets add raw data/raw     # a version, pinned in .aletheia/datasets.lock
aletheia datasets pull                 # in a fresh clone: every pinned dataset back in place
```
""",
        "pyproject.toml": f"""[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{package.replace("_", "-")}"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = []

[tool.setuptools.packages.find]
where = ["src"]
""",
        f"src/{package}/__init__.py": f'"""{title}."""\n',
        "notebooks/.gitkeep": keep,
        "models/.gitkeep": keep,
        "reports/figures/.gitkeep": keep,
        "references/.gitkeep": keep,
    }
