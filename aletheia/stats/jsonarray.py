"""A JSON file holding one array of records, read as its JSON Lines equivalent.

``[{"a": 1}, {"a": 2}]`` (what ``json.dump(records)`` and many exports
write) becomes ``{"a": 1}\\n{"a": 2}\\n``, streamed: ijson (its C backend,
yajl) parses one element at a time, so memory holds one record and a
buffer, never the array. The result feeds the same reader as any JSON Lines
file, so types, statistics and restarts are the same as for ``.jsonl``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from aletheia.errors import AletheiaError
from aletheia.stats.linestream import LineStream, json_line

_BUFFER = 1 << 20


class NotRecordsError(AletheiaError):
    """The JSON is not an array of objects (records)."""


def starts_an_array(head: bytes) -> bool:
    """True if the first non-blank character (after a byte-order mark) is ``[``."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"["


class ArrayAsLines(LineStream):
    """A read-only byte stream of one JSON line per element of the array in ``source``."""

    def __init__(self, source: IO[bytes]) -> None:
        import ijson  # only JSON arrays need it: not loaded for other formats

        super().__init__()
        self._json_error = ijson.JSONError
        self._records = ijson.items(source, "item", use_float=True, buf_size=_BUFFER)
        self.records = 0

    def _lines(self) -> Iterator[bytes]:
        try:
            for record in self._records:
                if not isinstance(record, dict):
                    raise NotRecordsError(
                        f"element {self.records} of the JSON array is a {_kind(record)}, "
                        "not a record (an object)",
                        "store tables as an array of objects or as JSON Lines",
                    )
                self.records += 1
                yield json_line(record)
        except self._json_error as exc:
            raise NotRecordsError(f"the JSON array is not valid JSON: {exc}") from exc


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__
