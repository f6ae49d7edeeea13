"""Where a CSV file's header is, judged from its first lines.

Shipped datasets often do not start with a plain header: R's ``write.csv``
leaves the row-name column unnamed (the header has one field fewer than the
rows), exports start with title lines, some writers end every row with a
delimiter. Read naively, every row then has "the wrong number of fields" and
is skipped. :func:`sniff` compares the first line's field count with the
count most of the following lines share and says how to read the file; each
fix is described in a note the profile keeps.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass

#: Lines looked at (the rest of the file is judged by the reader's own count of bad rows).
SNIFF_RECORDS = 1000
#: Share of the sniffed lines that must agree on a field count for it to be "the" shape.
_AGREEMENT = 0.8
#: Most lines accepted as a preamble before the header.
_MAX_PREAMBLE = 20
#: Name given to a header's missing first column (R's row names; pandas' index).
INDEX_NAME = "index"


@dataclass(frozen=True)
class CsvShape:
    """How to read a CSV file: rows to skip, names to use, columns to keep."""

    skip_rows: int = 0
    column_names: tuple[str, ...] | None = None
    include_columns: tuple[str, ...] | None = None
    note: str | None = None


def sniff(head: bytes, delimiter: str, complete: bool) -> CsvShape:
    """The shape of a CSV file from its first bytes (``complete``: the whole file)."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        lines = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:
        return CsvShape()  # let the real reader report what is wrong
    # The reader's skip_rows counts blank lines too: keep every record's line number.
    at = [i for i, r in enumerate(lines) if r]
    if not complete and len(at) > 1:
        at.pop()  # the last line may be cut off mid-record
    at = at[:SNIFF_RECORDS]
    records = [lines[i] for i in at]
    if len(records) < 3:
        return CsvShape()
    counts = [len(r) for r in records]
    modal, agreeing = Counter(counts[1:]).most_common(1)[0]
    if counts[0] == modal or agreeing < _AGREEMENT * (len(counts) - 1):
        return CsvShape()
    first, body = records[0], [r for r in records[1:] if len(r) == modal]
    if counts[0] == modal - 1 and counts[1] == modal:
        if all(r[-1] == "" for r in body):
            return _trailing_delimiter(first, at[0] + 1)
        if not _looks_like_header(records[1], body[1:]):
            return _unnamed_first_column(first, at[0] + 1)
    if counts[0] > modal and all(not f.strip() for f in first[modal:]):
        return CsvShape(
            skip_rows=at[0] + 1,
            column_names=tuple(first[:modal]),
            note=f"the header's {counts[0] - modal} trailing empty field(s) were dropped",
        )
    preamble = counts.index(modal)
    if preamble <= _MAX_PREAMBLE and all(c < modal for c in counts[:preamble]):
        return CsvShape(
            skip_rows=at[preamble],
            note=f"{preamble} line(s) before the header (fewer fields than the rows) were skipped",
        )
    return CsvShape()


def _trailing_delimiter(header: list[str], skip: int) -> CsvShape:
    names = (*header, _unused("trailing", header))
    keep = tuple(header) if len(set(header)) == len(header) else None
    return CsvShape(
        skip_rows=skip,
        column_names=names,
        include_columns=keep,
        note="every row ends with a delimiter: the empty last field was dropped",
    )


def _unnamed_first_column(header: list[str], skip: int) -> CsvShape:
    name = _unused(INDEX_NAME, header)
    return CsvShape(
        skip_rows=skip,
        column_names=(name, *header),
        note=f"the header has no name for the first column (row names): it was named {name!r}",
    )


def _unused(name: str, taken: list[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def _looks_like_header(line: list[str], body: list[list[str]]) -> bool:
    """True if ``line`` has text where the lines below have numbers (a header, not data)."""
    for j, value in enumerate(line):
        numbers = sum(1 for r in body if _is_number(r[j]))
        if body and numbers >= _AGREEMENT * len(body) and not _is_number(value):
            return True
    return False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
