"""JSON Lines whose given fields are read as text: a field that mixes kinds of values.

pyarrow's JSON reader gives each field one type, and stops at a field whose
values are numbers in some records and strings (or objects) in others
(``Column(/id) changed from number to string``). Such fields are common in
exported data (ids that are mostly numeric, codes like ``7`` and ``"7a"``).
:class:`FieldsAsText` rewrites the records so that those top-level fields
hold JSON text (``7`` becomes ``"7"``, ``{"x": 1}`` becomes ``"{\\"x\\":1}"``;
strings and nulls stay), and the reader then sees one kind of value.
Only a file that needs it pays for parsing every record in Python.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO

from aletheia.stats.linestream import LineStream, json_line, json_text

#: pyarrow's message for a field whose values change kind, and where (``/a`` or ``/a/b``).
_MIXED = re.compile(r"Column\(/([^)]*)\) changed from (\w+) to (\w+)")


def mixed_field(message: str) -> tuple[str, str] | None:
    """The top-level field a reader error about mixed kinds is in, and what to say of it."""
    match = _MIXED.search(message)
    if match is None:
        return None
    path, before, after = match[1], match[2], match[3]
    name = path.split("/")[0]
    where = "" if path == name else f" (at /{path})"
    return name, f"field {name!r} holds both {before}s and {after}s{where}: read as text"


class FieldsAsText(LineStream):
    """The JSON Lines of ``source`` with every non-string value of ``fields`` as JSON text."""

    def __init__(self, source: IO[bytes], fields: tuple[str, ...]) -> None:
        super().__init__()
        self._source = source
        self._fields = frozenset(fields)

    def _lines(self) -> Iterator[bytes]:
        for line in iter(self._source.readline, b""):
            yield self._rewritten(line)

    def _rewritten(self, line: bytes) -> bytes:
        try:
            record = json.loads(line)
        except ValueError:
            return line  # blank, or not JSON: the reader says what is wrong with it
        if not isinstance(record, dict):
            return line
        changed = False
        for name in self._fields.intersection(record):
            value = record[name]
            if value is not None and not isinstance(value, str):
                record[name] = json_text(value)
                changed = True
        return json_line(record) if changed else line
