"""A repository's own settings: ``.aletheia/config.toml`` at the root of its git work tree.

A project commits the few settings that belong to it (its aletheia project
name, its default experiment, how strict runs are about git, how much of the
untracked code a run keeps) so everyone who clones it gets them. They sit between the user's
config file and the environment (:func:`aletheia.cloud.config.resolve`).

A cloned repository is someone else's input, like a repository's
``.git/config`` is to git (hence ``safe.directory``). A repository could
otherwise point the bucket at its author's bucket so that ``datasets add``
uploads the user's data there, name emulator hosts or a Firebase API key
so that tokens and passwords go to its author, or pick the credentials
file. So the keys a repository may set are an allow-list
(:data:`REPO_SETTINGS`); every other known setting is *refused*: ignored,
with a note naming the key and where to set it instead. A setting added
later is refused until it is deliberately allowed here. An unknown key is
an error listing the allowed ones. Values are checked here, before any
client is built.

Only the file at the git root counts (the root is the nearest directory
at or above the start holding ``.git``): a stray ``.aletheia/config.toml``
in a parent directory such as ``/tmp`` is never read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aletheia.cloud import layout
from aletheia.errors import ConfigError, ValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: Directory of a repository's aletheia files (its dataset lock file lives there too).
REPO_DIR = ".aletheia"
#: The repository's settings file in :data:`REPO_DIR`.
REPO_CONFIG_NAME = "config.toml"
#: The settings a repository may choose: what the project is, never where it goes.
REPO_SETTINGS: tuple[str, ...] = ("project", "experiment", "git_policy", "snapshot_max_bytes")
#: Why a known setting is refused in a repository (others: :data:`_OTHERWISE`).
REFUSED_WHY: dict[str, str] = {
    **dict.fromkeys(
        ("mode", "cloud_project", "bucket", "downloads_url"),
        "it says where your data goes",
    ),
    **dict.fromkeys(
        ("cache_dir", "stack_dir"),
        "it says which files on this machine aletheia reads and writes",
    ),
    **dict.fromkeys(
        (
            "firestore_emulator_host",
            "storage_emulator_host",
            "auth_emulator_host",
            "firebase_api_key",
            "credentials_file",
            "user_credentials",
            "identity",
            "owner",
        ),
        "it says which credentials are used or where they are sent",
    ),
    "export_every": "it belongs to this machine's local stack",
}
_OTHERWISE = "only you may set it, not a repository you cloned"
#: A settings file is a few lines: a bigger one (or a device) is not one.
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class RepoConfig:
    """The settings a repository's config file gives, and the keys it was refused."""

    path: Path
    #: Allowed settings and their (checked) values.
    values: dict[str, str]
    #: Known settings the file tried to set, with why each was refused.
    refused: dict[str, str]


def find_repo_root(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` (default: cwd) holding ``.git``."""
    try:
        here = (start or Path.cwd()).resolve()
    except OSError:  # the cwd was removed under the process: no repository
        return None
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def config_path(repo_root: Path) -> Path:
    """``{repo}/.aletheia/config.toml``."""
    return repo_root / REPO_DIR / REPO_CONFIG_NAME


def read(start: Path | None, *, known: Collection[str]) -> RepoConfig | None:
    """The config of the repository at or above ``start`` (cwd), ``None`` if it has none.

    ``known`` are all the settings there are: a key outside them is an error,
    a key inside them but not in :data:`REPO_SETTINGS` is refused.
    """
    root = find_repo_root(start)
    if root is None:
        return None
    path = config_path(root)
    table = _load(path)
    if table is None:
        return None
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in {path}: {', '.join(unknown)}",
            f"a repository's config may set: {', '.join(REPO_SETTINGS)}",
        )
    values: dict[str, str] = {}
    refused: dict[str, str] = {}
    for key, value in table.items():
        if key not in REPO_SETTINGS:
            refused[key] = REFUSED_WHY.get(key, _OTHERWISE)
            continue
        if not isinstance(value, str):
            raise ConfigError(
                f"setting {key!r} in {path} must be a string, "
                f"not {type(value).__name__} {value!r:.60}",
                f"write it as {key} = \"...\" (see README 'Configuration')",
            )
        values[key] = value
    for key in ("project", "experiment"):
        try:
            if key in values:
                layout.validate_id(values[key], f"{key} name")
        except ValidationError as exc:
            raise ConfigError(f"{exc.message} (in {path})", exc.hint) from exc
    return RepoConfig(path, values, refused)


def _load(path: Path) -> dict[str, Any] | None:
    """The ``[aletheia]`` table (or top level) of ``path``; ``None`` if there is no file."""
    try:
        if not path.exists():
            return None
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            raise ConfigError(
                f"{path} is not a settings file (a regular file of at most {MAX_BYTES} bytes)",
                "replace it with a small TOML file, or remove it",
            )
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"repository config {path} cannot be read: {exc.strerror}",
            "fix its permissions, or remove it",
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"repository config {path} is not valid TOML: {exc}", "fix it") from exc
    table = data.get("aletheia", data)
    if not isinstance(table, dict):
        raise ConfigError(f"[aletheia] in {path} must be a table", "see README 'Configuration'")
    return table


def template(project: str) -> str:
    """The commented ``.aletheia/config.toml`` ``aletheia init`` writes for ``project``."""
    layout.validate_id(project, "project name")
    return f"""\
# aletheia settings of this repository, committed with the code.
# A repository may set only: {", ".join(REPO_SETTINGS)}.
# Where data and credentials go (cloud_project, bucket, emulator hosts,
# credentials...) is yours alone: ~/.config/aletheia/config.toml or the
# environment, which also wins over this file. `aletheia config` shows
# every value and where it came from.
[aletheia]
project = {_toml_string(project)}
# experiment = "baseline"      # for Metastore().exper() without a name
# git_policy = "warn"           # warn | strict (refuse to run with uncommitted code) | off
# snapshot_max_bytes = "10MB"   # untracked files a run start keeps, in all (0: none)
"""


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string (a JSON string is one for the characters ids allow)."""
    return json.dumps(text, ensure_ascii=False)
