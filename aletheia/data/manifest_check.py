"""Checking the rows of a stored manifest before anything acts on them.

A manifest blob is addressed by its own hash, so its bytes are what was
stored, but not necessarily what aletheia wrote: a document can point at any
blob, and a blob may come from an older or a foreign writer. Pulling,
diffing and removing all trust the rows (a path becomes a file on disk, a
digest a blob to delete), so a damaged manifest is refused as a whole with
:class:`~aletheia.errors.IntegrityError`, never half-used and never a
``KeyError`` or ``ValueError`` from deep inside a command.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aletheia.cloud import layout
from aletheia.errors import IntegrityError, ValidationError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: How much of a bad value an error message quotes.
_QUOTE = 60


def parse_manifest(data: bytes, fmt: int, what: str = "manifest") -> list[tuple[str, str, int]]:
    """The ``(path, sha256, size)`` rows of manifest bytes in format ``fmt``.

    Raises :class:`IntegrityError` naming ``what`` and the first problem:
    bytes that are not JSON, an unknown format, ``files`` that is not a list
    of ``[path, sha256, size]``, a path that escapes the root, a path listed
    twice, or a path that is both a file and a directory (``a`` and ``a/b``).
    """
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(what, f"it is not JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise damaged(what, f"it is a JSON {type(body).__name__}, not an object")
    if body.get("format") != fmt:
        raise damaged(
            what, f"unknown manifest format {body.get('format')!r:.{_QUOTE}}", "upgrade aletheia"
        )
    files = body.get("files")
    if not isinstance(files, list):
        raise damaged(what, f"'files' is a {type(files).__name__}, not a list of rows")
    rows = [_row(row, what) for row in files]
    _check_tree([path for path, _, _ in rows], what)
    return rows


def damaged(what: str, problem: str, hint: str | None = None) -> IntegrityError:
    """The error for an unusable manifest (also used by callers that know the version)."""
    return IntegrityError(
        f"{what} is damaged: {problem}",
        hint
        or "the version cannot be read or pulled; remove it with "
        "`aletheia datasets rm NAME --version V --force` and add the data again",
    )


def _row(row: Any, what: str) -> tuple[str, str, int]:
    if not (isinstance(row, list) and len(row) == 3):
        raise damaged(what, f"row {row!r:.{_QUOTE}} is not [path, sha256, size]")
    path, digest, size = row
    try:
        layout.validate_relpath(path)
    except ValidationError as exc:
        raise damaged(what, exc.message) from exc
    if not (isinstance(digest, str) and SHA256.match(digest)):
        raise damaged(what, f"{path!r}: {digest!r:.{_QUOTE}} is not a sha256 digest")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise damaged(what, f"{path!r}: size {size!r:.{_QUOTE}} is not a byte count")
    return path, digest, size


def _check_tree(paths: list[str], what: str) -> None:
    """Every path once, and no file where another row needs a directory."""
    normal = sorted(layout.validate_relpath(p) for p in paths)
    seen: set[str] = set()
    for path in normal:
        if path in seen:
            raise damaged(what, f"{path!r} is listed twice")
        seen.add(path)
    for path in normal:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in seen:
                raise damaged(what, f"{parent!r} is a file and also the directory of {path!r}")
