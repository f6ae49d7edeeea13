"""Where each installed distribution came from, and which ones the process imported.

A ``name==version`` freeze cannot rebuild an environment that holds an
editable checkout or a package installed from a git URL: the name may not be
on PyPI at all, or may be someone else's package there. Since PEP 610,
installers write ``direct_url.json`` into a distribution's metadata when it
was *not* installed from an index; :func:`distributions` reads it:

* ``index``: from a package index (PyPI or another), installable as ``name==version``;
* ``editable`` / ``local``: from a directory on this machine (``pip install
  -e PATH`` / ``pip install PATH``), with the git commit and remote of that
  directory when it is a repository, so it can be rebuilt elsewhere;
* ``archive``: from a wheel or sdist file or URL;
* ``vcs``: from a VCS URL, with the exact commit installed.

:func:`imported` maps the top-level modules in ``sys.modules`` to the
distributions providing them (``top_level.txt``, else the first path parts
of ``RECORD``, read as text: ``importlib.metadata.packages_distributions``
costs most of a second in a big environment, this costs milliseconds).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from aletheia.cloud.redact import redact_url
from aletheia.tracking.envinfo import name_and_version, normalize_name

INDEX, EDITABLE, LOCAL, ARCHIVE, VCS = "index", "editable", "local", "archive", "vcs"
FORMAT = 1
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}


@dataclass(frozen=True)
class Distribution:
    """One installed distribution and its origin (``url``/``path``/``commit`` as it applies)."""

    name: str
    version: str
    origin: str
    imported: bool = False
    url: str | None = None
    path: str | None = None
    vcs: str | None = None
    commit: str | None = None
    subdirectory: str | None = None
    #: For a local directory that is a git repository: its remote, commit, and if it was dirty.
    git_remote: str | None = None
    git_commit: str | None = None
    git_subdirectory: str | None = None
    git_dirty: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, without empty fields."""
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Distribution:
        """Read :meth:`to_dict`'s form back (unknown keys ignored)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


_lock = threading.Lock()
_table: list[tuple[Distribution, frozenset[str]]] | None = None


def distributions(imported_names: set[str] | None = None) -> list[Distribution]:
    """Every distribution importable from ``sys.path`` (the first of a name wins), by name.

    Origins are read once per process (as :func:`aletheia.tracking.envinfo.capture`
    reads the package list); ``imported_names`` marks the ones providing those modules.
    """
    global _table
    with _lock:
        if _table is None:
            _table = _scan()
        table = _table
    wanted = imported_names or set()
    return [
        Distribution(**{**asdict(d), "imported": True}) if top & wanted else d for d, top in table
    ]


def _scan() -> list[tuple[Distribution, frozenset[str]]]:
    seen: dict[str, tuple[Distribution, frozenset[str]]] = {}
    for dist in importlib.metadata.distributions():
        raw_name, version = name_and_version(dist)
        if not raw_name or not version:
            continue
        name = normalize_name(raw_name)
        if name not in seen:
            origin = _origin(name, version, dist.read_text("direct_url.json"))
            if origin.origin == INDEX:
                origin = _source_tree(origin, dist)
            seen[name] = (origin, _modules(dist, name))
    return [seen[n] for n in sorted(seen)]


def imported_modules() -> set[str]:
    """Names of the modules imported so far (dotted), standard library left out."""
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    return {m for m in list(sys.modules) if m.partition(".")[0] not in stdlib}


def capture() -> list[Distribution]:
    """:func:`distributions`, each marked when the process imported it."""
    return distributions(imported_modules())


def encode(dists: list[Distribution]) -> bytes:
    """The blob a run stores: deterministic JSON (same environment, same blob)."""
    doc = {"format": FORMAT, "distributions": [d.to_dict() for d in dists]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes) -> list[Distribution]:
    """The distributions of a stored blob."""
    doc = json.loads(data)
    return [Distribution.from_dict(d) for d in doc.get("distributions") or []]


def _modules(dist: importlib.metadata.Distribution, name: str) -> frozenset[str]:
    """Dotted names of the modules a distribution installs (from ``RECORD``, read as text).

    Namespace packages (``google``) are shared by many distributions, so a
    distribution counts as imported through its own modules
    (``google.cloud.storage``), not a shared top-level name. An editable
    install lists no modules in ``RECORD``: its ``top_level.txt``, or its own
    name, stands for them.
    """
    modules: set[str] = set()
    for line in (dist.read_text("RECORD") or "").splitlines():
        path = line.split(",", 1)[0]
        if not path.endswith(".py") or path.startswith("..") or "__pycache__" in path:
            continue
        parts = path[:-3].split("/")
        if any(p.endswith((".dist-info", ".data")) for p in parts):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and all(p.isidentifier() for p in parts):
            modules.add(".".join(parts))
    if not modules:
        top = dist.read_text("top_level.txt") or ""
        modules = {t.strip() for t in top.splitlines() if t.strip()} or {name.replace("-", "_")}
    return frozenset(modules)


def _source_tree(found: Distribution, dist: importlib.metadata.Distribution) -> Distribution:
    """A ``.egg-info`` next to the source on ``sys.path`` (a checkout run in place) is local
    code, not an index package, whatever its name says."""
    where = getattr(dist, "_path", None)  # PathDistribution's metadata directory
    if not isinstance(where, Path) or where.suffix != ".egg-info":
        return found
    parent = where.parent
    if parent.name in ("site-packages", "dist-packages"):
        return found  # an old-style install into the environment
    return _with_git(Distribution(found.name, found.version, EDITABLE, path=str(parent.resolve())))


def _origin(name: str, version: str, direct_url: str | None) -> Distribution:
    if not direct_url:
        return Distribution(name, version, INDEX)
    try:
        info = json.loads(direct_url)
        url = str(info["url"])
    except (ValueError, KeyError, TypeError):
        return Distribution(name, version, INDEX)
    subdirectory = info.get("subdirectory")
    if "vcs_info" in info:
        vcs = info["vcs_info"] or {}
        return Distribution(
            name,
            version,
            VCS,
            url=redact_url(url),
            vcs=str(vcs.get("vcs") or "git"),
            commit=vcs.get("commit_id"),
            subdirectory=subdirectory,
        )
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = unquote(parsed.path)
        if "dir_info" in info:
            editable = bool((info.get("dir_info") or {}).get("editable"))
            return _with_git(
                Distribution(name, version, EDITABLE if editable else LOCAL, path=path)
            )
        return Distribution(name, version, ARCHIVE, path=path)
    return Distribution(name, version, ARCHIVE, url=redact_url(url))


def _with_git(dist: Distribution) -> Distribution:
    """A local directory's git commit and remote, when it is in a repository that has one."""
    if dist.path is None or not Path(dist.path).is_dir():
        return dist
    found = _git(dist.path, "rev-parse", "--show-toplevel", "HEAD")
    if found is None or len(found.split()) != 2:
        return dist
    root, commit = found.split()
    remote = _git(dist.path, "remote", "get-url", "origin")
    dirty = _git(dist.path, "status", "--porcelain", "--untracked-files=no", ".")
    sub = os.path.relpath(Path(dist.path).resolve(), Path(root).resolve())
    return Distribution(
        **{
            **asdict(dist),
            "git_remote": redact_url(remote.strip()) if remote else None,
            "git_commit": commit,
            "git_subdirectory": None if sub == "." else Path(sub).as_posix(),
            "git_dirty": bool(dirty and dirty.strip()),
        }
    )


def _git(cwd: str, *args: str) -> str | None:
    with contextlib.suppress(OSError):
        proc = subprocess.run(
            ["git", "-C", cwd, *args],
            capture_output=True,
            text=True,
            env={**os.environ, **_GIT_ENV},
        )
        if proc.returncode == 0:
            return proc.stdout
    return None
