"""Where a CSV file's header is, judged from its first lines.

Shipped datasets often do not start with a plain header: R's ``write.csv``
leaves the row-name column unnamed (the header has one field fewer than the
rows) or writes it as ``""``, exports start with title lines, some writers
end every row with a delimiter, European ones separate fields with ``;``,
Excel may start with a line ``sep=;`` naming the separator, and UCI-style
files have no header at all.
Read naively, every row then has "the wrong number of fields" and is
skipped, or the whole line is one column. :func:`sniff` compares the first
line's field count with the count most of the following lines share (and
tries other delimiters when the expected one gives no plain table) and says
how to read the file; each fix is described in a note the profile keeps.
While reading, :func:`holds_rows` catches a quote that never closes (it
swallows the rows after it without any error) and
:func:`empty_text_as_missing` makes empty fields missing, as DuckDB does.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc

from aletheia.stats import textencodings

#: Lines looked at (the rest of the file is judged by the reader's own count of bad rows).
SNIFF_RECORDS = 1000
#: Share of the sniffed lines that must agree on a field count for it to be "the" shape.
_AGREEMENT = 0.8
#: Most lines accepted as a preamble before the header.
_MAX_PREAMBLE = 20
#: Delimiters tried when the expected one splits no line.
_OTHER_DELIMITERS = (";", "\t", "|", ",")
#: Excel's first line naming the separator (``sep=;``), which it writes and reads.
_EXCEL_SEPARATOR = re.compile(r"sep=([^\r\n])\r?\n", re.IGNORECASE)
#: Name given to a header's missing first column (R's row names; pandas' index).
INDEX_NAME = "index"


@dataclass(frozen=True)
class CsvShape:
    """How to read a CSV file: rows to skip, names to use, columns to keep."""

    skip_rows: int = 0
    column_names: tuple[str, ...] | None = None
    include_columns: tuple[str, ...] | None = None
    delimiter: str | None = None  # when not the one the file's name implies
    notes: tuple[str, ...] = ()


def delimiter_of(format: str) -> str:
    """The delimiter a ``csv`` or ``tsv`` file's name implies."""
    return "\t" if format == "tsv" else ","


def sniff_file(head: bytes, format: str, complete: bool) -> tuple[CsvShape, str | None]:
    """How to read a ``csv`` or ``tsv`` file from its first bytes (``complete``: the whole
    file): its shape, and the encoding a byte-order mark declares (None: UTF-8, or found
    not to be while reading). Every engine reads a file by this answer."""
    delimiter = delimiter_of(format)
    encoding = textencodings.marked(head)  # UTF-16 with its byte-order mark, say
    shape = sniff(head, delimiter, complete, encoding)
    if encoding is not None:
        note = f"text is {encoding.upper()} (it starts with a byte-order mark)"
        shape = replace(shape, notes=(*shape.notes, note))
    return shape, encoding


def sniff(head: bytes, delimiter: str, complete: bool, encoding: str | None = None) -> CsvShape:
    """The shape of a CSV file from its first bytes (``complete``: the whole file), whose
    text is in ``encoding`` (UTF-8 when None)."""
    text = textencodings.decode(head, encoding).lstrip("\ufeff")
    declared = _EXCEL_SEPARATOR.match(text)
    if declared is not None:
        # Excel's own convention: a first line "sep=;" names the separator (and is no row).
        named = declared[1]
        shape = sniff(text[declared.end() :].encode(), named, complete)
        line = declared[0].rstrip("\r\n")
        note = f"the first line {line!r} names the separator (Excel's convention)"
        return replace(
            shape,
            skip_rows=shape.skip_rows + 1,
            delimiter=shape.delimiter or (named if named != delimiter else None),
            notes=(note, *shape.notes),
        )
    at, records = _records(text, delimiter, complete)
    notes: tuple[str, ...] = ()
    chosen = None
    if len(records) >= 3 and not _plain_table(records):
        # Often a European export (";", with decimal commas) or a pipe-separated file.
        for other in (d for d in _OTHER_DELIMITERS if d != delimiter):
            other_at, other_records = _records(text, other, complete)
            if _plain_table(other_records):
                at, records, chosen = other_at, other_records, other
                notes = (f"fields are separated by {other!r}, not {delimiter!r}",)
                break
    shape = _shape(at, records)
    table = _plain_table(records) or _one_column(records)
    if shape == CsvShape() and table and not _has_header(records):
        shape = _headerless(len(records[0]))
    shape = _name_columns(shape, at, records)
    return replace(shape, delimiter=chosen, notes=notes + shape.notes)


def _records(text: str, delimiter: str, complete: bool) -> tuple[list[int], list[list[str]]]:
    """Non-blank records and their line numbers (the reader's skip_rows counts blank lines)."""
    try:
        lines = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:
        return [], []  # let the real reader report what is wrong
    at = [i for i, r in enumerate(lines) if r]
    if not complete and len(at) > 1:
        at.pop()  # the last line may be cut off mid-record
    at = at[:SNIFF_RECORDS]
    return at, [lines[i] for i in at]


def _plain_table(records: list[list[str]]) -> bool:
    """A header and rows that (nearly all) have the same number of fields, more than one."""
    if len(records) < 3:
        return False
    count, agreeing = Counter(len(r) for r in records).most_common(1)[0]
    return count > 1 and len(records[0]) == count and agreeing >= _AGREEMENT * len(records)


def _one_column(records: list[list[str]]) -> bool:
    """A file of one column: every line one field (a list of labels, of scores)."""
    return len(records) >= 3 and all(len(r) == 1 for r in records)


def _shape(at: list[int], records: list[list[str]]) -> CsvShape:
    """Where the header and the rows are, when the first line does not fit the rest."""
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
            notes=(f"the header's {counts[0] - modal} trailing empty field(s) were dropped",),
        )
    preamble = counts.index(modal)
    if preamble <= _MAX_PREAMBLE and all(c < modal for c in counts[:preamble]):
        note = f"{preamble} line(s) before the header (fewer fields than the rows) were skipped"
        return CsvShape(skip_rows=at[preamble], notes=(note,))
    return CsvShape()


def _name_columns(shape: CsvShape, at: list[int], records: list[list[str]]) -> CsvShape:
    """Names for empty header fields (``""`` is what R writes over its row names), and
    names of their own for a header's repeated ones (``a, a`` read as ``a, a_1``, as
    DuckDB does): statistics, drift and the row sample are keyed by column name, so two
    columns of one name would be compared, or kept, as one."""
    if shape.column_names is not None:
        names, skip = list(shape.column_names), shape.skip_rows
    else:
        header = next((k for k, line in enumerate(at) if line >= shape.skip_rows), None)
        if header is None:
            return shape
        names, skip = list(records[header]), at[header] + 1
    notes = list(shape.notes)
    empty = [k for k, n in enumerate(names) if not n.strip()]
    for k in empty:
        names[k] = _unused(INDEX_NAME if k == 0 else f"column{k}", names)
    if empty:
        shown = ", ".join(repr(names[k]) for k in empty)
        notes.append(f"header fields without a name were named {shown}")
    names, repeated = unique_names(names, "header names")
    if repeated is not None:
        notes.append(repeated)
    if not empty and repeated is None:
        return shape
    include = shape.include_columns
    if include is not None:
        include = tuple(names[: len(include)])
    return replace(
        shape,
        skip_rows=skip,
        column_names=tuple(names),
        include_columns=include,
        notes=tuple(notes),
    )


def unique_names(names: list[str], what: str) -> tuple[list[str], str | None]:
    """Names of their own for repeated ones (``a, a`` -> ``a, a_1``, as DuckDB names them),
    and the note saying so (None when no name repeats): statistics, drift and the row
    sample are keyed by column name, so two columns of one name would be one."""
    names = list(names)
    repeated = [k for k, n in enumerate(names) if n in names[:k]]
    for k in repeated:
        names[k] = _unused(names[k], names)
    if not repeated:
        return names, None
    shown = ", ".join(f"{names[k]!r} (column {k + 1})" for k in repeated)
    return names, f"{what} that repeat an earlier one were renamed: {shown}"


def _trailing_delimiter(header: list[str], skip: int) -> CsvShape:
    names = (*header, _unused("trailing", header))
    keep = tuple(header) if len(set(header)) == len(header) else None
    return CsvShape(
        skip_rows=skip,
        column_names=names,
        include_columns=keep,
        notes=("every row ends with a delimiter: the empty last field was dropped",),
    )


def _unnamed_first_column(header: list[str], skip: int) -> CsvShape:
    name = _unused(INDEX_NAME, header)
    return CsvShape(
        skip_rows=skip,
        column_names=(name, *header),
        notes=(f"the header has no name for the first column (row names): it was named {name!r}",),
    )


def _unused(name: str, taken: list[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def _has_header(records: list[list[str]]) -> bool:
    """Whether the first record names the columns.

    Not when it fits the records below it: a number (or empty) wherever a column holds
    only numbers, as DuckDB judges, and, where columns hold text, one of its values
    among that column's own (``Iris-setosa`` in a headerless iris file). Where DuckDB
    takes a header for a row, pandas' reading is kept: a text value seen nowhere below
    (``country`` over years as column names), column positions (pandas' own
    ``0,1,2``) and an empty name over a column without gaps (an index's) are names.
    A table of text alone is taken to have its header.
    """
    first, body = records[0], [r for r in records[1:] if len(r) == len(records[0])]
    if not body:
        return True
    numeric, text = [], []
    for j in range(len(first)):
        values = [r[j] for r in body if r[j]]
        if values and all(_is_number(v) for v in values):
            numeric.append(j)
        elif values:
            text.append(j)
    if not numeric or any(first[j] and not _is_number(first[j]) for j in numeric):
        return True
    # pandas' to_csv of a frame with default column names writes "0,1,2" (",0,1,2" with
    # its index): positions, not data. An empty field over a column that has no empty
    # value is a name's slot (an index's), not a missing value.
    if _positions(first) or any(not first[j] and all(r[j] for r in body) for j in numeric):
        return True
    return bool(text) and not any(first[j] in {r[j] for r in body} for j in text)


def _positions(line: list[str]) -> bool:
    """Whether ``line`` is column positions, 0.. or 1.. (after an index's empty name)."""
    names = line[1:] if line and not line[0] else line
    if len(names) < 2 or not all(n.isdigit() for n in names):
        return False
    start = int(names[0])
    return start in (0, 1) and [int(n) for n in names] == list(range(start, start + len(names)))


def _headerless(fields: int) -> CsvShape:
    """No header: columns named as DuckDB names them (``column0``, or ``column00`` from
    ten columns on), and the first line read as a row."""
    width = len(str(fields - 1))
    names = tuple(f"column{j:0{width}d}" for j in range(fields))
    note = f"the file has no header (its first line is a row): columns named {names[0]}, …"
    return CsvShape(column_names=names, notes=(note,))


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


#: Lines inside one value that look like whole rows before a quote counts as runaway.
_SWALLOWED_ROWS = 2


def runaway_quote(text: str, delimiter: str, fields: int) -> bool:
    """True if ``text`` (one value, or one bad row) holds lines that look like whole rows.

    A field that opens a quote and never closes it (``"A summary cut off``)
    makes the reader take every following line as part of that value, up to
    the next quote: rows vanish without any error. A multi-line value whose
    inner lines each have exactly the file's number of delimiters is that,
    not prose.
    """
    if fields < 3 or "\n" not in text:
        return False
    rows = sum(1 for line in text.split("\n")[1:] if line.count(delimiter) == fields - 1)
    return rows >= _SWALLOWED_ROWS


def multiline_texts(batch: pa.RecordBatch) -> list[str]:
    """The text values of ``batch`` that span lines (usually none)."""
    out: list[str] = []
    for array in batch.columns:
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            continue
        multiline = pc.filter(array, pc.match_substring(array, "\n"))
        out.extend(value for value in multiline.to_pylist() if value is not None)
    return out


def holds_rows(batch: pa.RecordBatch, delimiter: str) -> bool:
    """True if some text value holds whole rows (see :func:`runaway_quote`)."""
    fields = batch.num_columns
    return any(runaway_quote(t, delimiter, fields) for t in multiline_texts(batch))


def empty_text_as_missing(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Empty CSV fields in text columns as missing values, as DuckDB and pandas read them.

    (The reader would keep them as empty strings; "NA" and friends stay text,
    as in DuckDB.)
    """
    arrays = batch.columns
    changed = False
    for i, array in enumerate(arrays):
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            continue
        empty = pc.equal(pc.binary_length(array), 0)
        if pc.any(empty).as_py():
            arrays[i] = pc.if_else(empty, pa.scalar(None, array.type), array)
            changed = True
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema) if changed else batch
