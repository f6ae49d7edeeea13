"""A run's environment as a file that installs it: requirements, conda or Dockerfile.

Each distribution is written as what can install it again
(:mod:`aletheia.tracking.envorigins` says where it came from):

* from an index: ``name==version``;
* from a VCS URL: ``name @ git+URL@COMMIT`` (the commit installed, not a branch);
* from a directory inside the run's repository: ``-e ./path`` (``-e .`` for the
  repository itself), relative to the repository root, where the file is used;
* from a directory elsewhere that is a git repository with a remote:
  ``name @ git+REMOTE@COMMIT#subdirectory=...`` (uncommitted changes there
  are noted: they cannot travel);
* from any other directory or a wheel file: ``name @ file:///path`` (installable
  where that path exists, said in a comment);

so an editable or local package is never written as an index name it does not
own (``aletheia==0.1.0`` is someone else's package on PyPI). Runs recorded
before origins were kept have only ``name==version`` lines; those are
written as they are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aletheia.cloud import layout
from aletheia.errors import NotFoundError, ValidationError
from aletheia.tracking import envorigins
from aletheia.tracking.envorigins import ARCHIVE, EDITABLE, INDEX, LOCAL, VCS, Distribution
from aletheia.tracking.readapi import RunView, thaw

if TYPE_CHECKING:
    from aletheia.data.blobstore import BlobStore

FORMATS = ("requirements", "conda", "dockerfile")


def requirement(dist: Distribution, repo_root: str | None) -> tuple[str, str | None]:
    """``(line, note)``: the pip requirement installing ``dist``, and a caveat if any."""
    if dist.origin == VCS and dist.url:
        url = dist.url if "+" in dist.url.split(":", 1)[0] else f"{dist.vcs or 'git'}+{dist.url}"
        line = f"{dist.name} @ {url}" + (f"@{dist.commit}" if dist.commit else "")
        return line + (f"#subdirectory={dist.subdirectory}" if dist.subdirectory else ""), None
    if dist.origin in (EDITABLE, LOCAL) and dist.path:
        inside = _inside(dist.path, repo_root)
        if inside is not None:
            target = "." if inside == "." else f"./{inside}"
            return (f"-e {target}" if dist.origin == EDITABLE else target), None
        if dist.git_remote and dist.git_commit:
            line = f"{dist.name} @ git+{git_url(dist.git_remote)}@{dist.git_commit}"
            if dist.git_subdirectory:
                line += f"#subdirectory={dist.git_subdirectory}"
            note = (
                f"{dist.name}: uncommitted changes in {dist.path} are not in it"
                if (dist.git_dirty)
                else None
            )
            return line, note
        uri = Path(dist.path).as_uri()
        return f"{dist.name} @ {uri}", f"{dist.name} {dist.version} was installed from {dist.path}"
    if dist.origin == ARCHIVE:
        source = dist.url or (Path(dist.path).as_uri() if dist.path else None)
        if source:
            note = None if dist.url else f"{dist.name} was installed from the file {dist.path}"
            return f"{dist.name} @ {source}", note
    return f"{dist.name}=={dist.version}", None


def git_url(remote: str) -> str:
    """A git remote as a URL pip understands: a local path becomes ``file://``, an
    scp-like ``git@host:org/repo`` becomes ``ssh://git@host/org/repo``."""
    if "://" in remote:
        return remote
    head, sep, rest = remote.partition(":")
    if sep and "/" not in head and not Path(remote).exists():
        return f"ssh://{head}/{rest}"
    return Path(remote).resolve().as_uri()


def _inside(path: str, repo_root: str | None) -> str | None:
    if not repo_root:
        return None
    try:
        rel = Path(os.path.realpath(path)).relative_to(Path(os.path.realpath(repo_root)))
    except ValueError:
        return None
    return rel.as_posix() or "."


def requirements(
    dists: list[Distribution], repo_root: str | None, *, imported_only: bool = False
) -> tuple[list[str], list[str]]:
    """Requirement lines (index packages first, then the rest) and the caveats."""
    lines: list[str] = []
    notes: list[str] = []
    chosen = [d for d in dists if d.imported or not imported_only]
    for dist in sorted(chosen, key=lambda d: (d.origin != INDEX, d.name)):
        line, note = requirement(dist, repo_root)
        lines.append(line)
        if note:
            notes.append(note)
    return lines, notes


def render(
    dists: list[Distribution] | None,
    fmt: str,
    *,
    python: str,
    repo_root: str | None,
    title: str,
    legacy_text: str | None = None,
    imported_only: bool = False,
) -> str:
    """The environment file in ``fmt`` (:data:`FORMATS`).

    ``dists`` None: a run without recorded origins, whose ``legacy_text``
    (``name==version`` lines) is used as it is.
    """
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    if dists is None:
        if fmt == "requirements":
            return legacy_text or ""  # as recorded: nothing more is known about it
        lines = [ln for ln in (legacy_text or "").splitlines() if ln.strip()]
        notes = ["recorded before package origins were kept: every line is an index name"]
    else:
        lines, notes = requirements(dists, repo_root, imported_only=imported_only)
    header = [f"# environment of {title} (python {python or 'unknown'})"]
    header += [f"# note: {n}" for n in notes]
    if fmt == "requirements":
        return "\n".join([*header, *lines]) + "\n"
    if fmt == "conda":
        body = ["name: " + _conda_name(title), "dependencies:"]
        body += [f"  - python={python}" if python else "  - python", "  - pip", "  - pip:"]
        body += [f"    - {_yaml_quote(line)}" for line in lines]
        return "\n".join([*header, *body]) + "\n"
    return _dockerfile(header, lines, python)


def _dockerfile(header: list[str], lines: list[str], python: str) -> str:
    image = f"python:{python}-slim" if python else "python:3-slim"
    needs_git = any("git+" in line for line in lines)
    body = [f"FROM {image}"]
    if needs_git:
        body.append(
            "RUN apt-get update && apt-get install -y --no-install-recommends git "
            "&& rm -rf /var/lib/apt/lists/*"
        )
    body += ["WORKDIR /app", "COPY . /app"]
    if lines:
        quoted = " \\\n    ".join(_shell_quote(line) for line in lines)
        body.append(f"RUN pip install --no-cache-dir \\\n    {quoted}")
    return "\n".join([*header, *body]) + "\n"


def _shell_quote(line: str) -> str:
    if line.startswith("-e "):
        return "-e " + _shell_quote(line[3:])
    return "'" + line.replace("'", "'\\''") + "'"


def _yaml_quote(line: str) -> str:
    return '"' + line.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _conda_name(title: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in title).strip("-") or "run"


def recorded(blobs: BlobStore, view: RunView) -> tuple[list[Distribution] | None, str | None]:
    """The run's distributions (None if it predates them) and its ``name==version`` text."""
    env = thaw(view.doc.get("env")) or {}
    label = f"run {view.id} of experiment {view.experiment!r}"
    if not isinstance(env, dict) or not (env.get("packages_ref") or env.get("distributions_ref")):
        raise NotFoundError(
            f"{label} has no recorded environment",
            "it was started without environment capture; nothing to reproduce from",
        )
    dists = None
    if env.get("distributions_ref"):
        dists = envorigins.decode(_get(blobs, env["distributions_ref"], label))
    text = _get(blobs, env["packages_ref"], label).decode() if env.get("packages_ref") else None
    return dists, text


def _get(blobs: BlobStore, ref: Any, label: str) -> bytes:
    digest = ref.get("sha256") if isinstance(ref, dict) else ref
    try:
        return blobs.get_bytes(layout.validate_sha256(str(digest)))
    except NotFoundError as exc:
        raise NotFoundError(
            f"the environment of {label} is not in the bucket: {exc.message}",
            "if the run was offline, upload its records with `aletheia sync`",
        ) from exc


def python_of(view: RunView) -> str:
    """The recorded python version (``""`` when unknown)."""
    python = (thaw(view.doc.get("env")) or {}).get("python")
    if isinstance(python, dict):
        python = python.get("version")
    return str(python) if python else ""


def render_for_run(
    blobs: BlobStore, view: RunView, fmt: str, *, imported_only: bool = False
) -> str:
    """:func:`render` for a stored run (its repository root anchors local paths)."""
    dists, text = recorded(blobs, view)
    return render_recorded(view, dists, text, fmt, imported_only=imported_only)


def render_recorded(
    view: RunView,
    dists: list[Distribution] | None,
    text: str | None,
    fmt: str,
    *,
    imported_only: bool = False,
) -> str:
    """:func:`render_for_run` of what :func:`recorded` already fetched for ``view``."""
    root = (thaw(view.doc.get("git")) or {}).get("root")
    return render(
        dists,
        fmt,
        python=python_of(view),
        repo_root=root,
        title=f"run {view.id} of {view.experiment}",
        legacy_text=text,
        imported_only=imported_only,
    )
