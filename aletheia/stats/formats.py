"""Which data files aletheia profiles, told from their name, content type and first bytes.

CSV/TSV, JSON Lines (and JSON arrays of records) and Parquet, optionally
gzip'd. Nothing here reads a table: detection needs no pyarrow, so the
storage function can classify an object (and callers can name formats)
without loading the readers.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from aletheia.errors import AletheiaError

FORMATS = ("csv", "tsv", "jsonl", "parquet")

#: Opens the file from its start; the profiler may call it again to restart.
Opener = Callable[[], IO[bytes]]


class ProfileError(AletheiaError):
    """The file cannot be profiled; the message is the reason recorded for the user."""


class ProfileMergeError(ProfileError):
    """Profiles that cannot be merged: different columns, or stored without sketches."""


class UnsupportedFormatError(ProfileError):
    """The object is not a data file aletheia profiles (CSV/TSV, JSON Lines, Parquet)."""


@dataclass(frozen=True)
class Detected:
    """A file's data format and compression."""

    format: str
    gzip: bool = False


_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_CONTENT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}


def tabular_name(name: str) -> bool:
    """True if ``name``'s extension names a format aletheia profiles (``.csv``, ``.pq.gz`` ...)."""
    lower = name.lower()
    stem = lower[:-3] if lower.endswith(".gz") else lower
    return any(stem.endswith(ext) for ext in _EXTENSIONS)


def detect_format(name: str | None, content_type: str | None, head: bytes) -> Detected:
    """The format of a file from its original name, content type and first bytes.

    Magic bytes win (``PAR1``, gzip's ``1f8b``); otherwise the name's
    extension (``.csv.gz`` counts as gzip'd CSV) or the content type must
    say; a blob without any hint is :class:`UnsupportedFormatError`.
    """
    lower = (name or "").lower()
    is_gzip = head[:2] == b"\x1f\x8b"
    if head[:4] == b"PAR1":
        return Detected("parquet")
    stem = lower[:-3] if lower.endswith(".gz") else lower
    for ext, fmt in _EXTENSIONS.items():
        if stem.endswith(ext):
            if fmt == "parquet":
                raise UnsupportedFormatError(f"{name} is named Parquet but lacks PAR1")
            return Detected(fmt, is_gzip)
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in _CONTENT_TYPES and _CONTENT_TYPES[ctype] != "parquet":
        return Detected(_CONTENT_TYPES[ctype], is_gzip)
    what = f"{name!r}" if name else "an object without a file name"
    hint = (
        "it is stored and versioned, but only tables get a schema and statistics"
        if name
        else "upload data files with their original name (metadata aletheia-path)"
    )
    raise UnsupportedFormatError(
        f"{what} ({content_type or 'no content type'}) is not CSV/TSV, JSON Lines or Parquet",
        hint,
    )


def looks_binary(head: bytes) -> bool:
    """True for bytes that are clearly not text (NULs or mostly control bytes)."""
    if not head:
        return False
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    return control > len(head) * 0.1


def open_bytes(data: bytes) -> Opener:
    """An opener over in-memory bytes (for small files and tests)."""
    return lambda: io.BytesIO(data)
