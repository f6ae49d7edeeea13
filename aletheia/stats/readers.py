"""Reading a data file as Arrow record batches, in blocks, whatever it turns out to hold.

pyarrow's streaming CSV and JSON readers and Parquet row batches give
blocks of bounded size. A :class:`ReadPlan` says how to read the file this
time; when a later block contradicts what the first one suggested (an int
column meeting ``1.5``, text that is not UTF-8, a row longer than a block,
a quote that never closes) the reader raises :class:`Restart` with a better
plan, or :func:`replan` derives one from pyarrow's error. Every change is a
note the profile reports.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import queue
import re
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa

from aletheia.stats import csvshape, jsonarray, jsontext, textencodings
from aletheia.stats.fileparts import Part, RangeReader
from aletheia.stats.formats import Detected, Opener, ProfileError
from aletheia.stats.rowlimit import RowLimitedReader

if TYPE_CHECKING:
    import pyarrow.json as pa_json

_MAX_BLOCK = 16 << 20  # longest row accepted; rows beyond are reported, not read
_SNIFF_BYTES = 1 << 20  # of a CSV file, to find its header


@dataclass(frozen=True)
class ReadPlan:
    """How to read the file this time (what earlier attempts taught us)."""

    block_size: int
    column_types: tuple[tuple[str, str], ...] = ()
    encoding: str | None = None
    ignore_new_fields: bool = False
    json_ints_as_floats: bool = False
    #: Top-level JSON fields read as text: their values are of more than one kind.
    json_text_fields: tuple[str, ...] = ()
    quoting: bool = True
    notes: tuple[str, ...] = ()
    shape: csvshape.CsvShape = field(default_factory=csvshape.CsvShape)


def head(open_stream: Opener, detected: Detected) -> tuple[bytes, bool]:
    """The first bytes of the (decompressed) file, and whether that is all of it."""
    with contextlib.closing(open_stream()) as raw:
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if detected.gzip else raw  # type: ignore[assignment]
        chunks, size = [], 0
        try:
            while size <= _SNIFF_BYTES:
                chunk = stream.read(_SNIFF_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except (EOFError, OSError) as exc:
            raise ProfileError(f"corrupt gzip stream: {exc}") from exc
    data = b"".join(chunks)
    return data[:_SNIFF_BYTES], len(data) <= _SNIFF_BYTES


class Restart(Exception):  # noqa: N818 - control flow, not an error
    """Read the file again from its start, under ``plan``."""

    def __init__(self, plan: ReadPlan) -> None:
        self.plan = plan


_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+)")
_JSON_INT = re.compile(r"Failed to convert JSON to u?int\d+")


def replan(plan: ReadPlan, detected: Detected, message: str) -> ReadPlan:
    """The next plan after a reader error, or :class:`ProfileError` if none helps."""
    # A header longer than a block reads as an "empty block": retry with bigger blocks too.
    header_too_long = "Empty CSV file or block" in message
    if "straddl" in message or "block size" in message or header_too_long:
        if plan.block_size >= _MAX_BLOCK:
            what = "the file is empty or its first line" if header_too_long else "a row"
            raise ProfileError(
                f"{what} is longer than {_MAX_BLOCK >> 20} MiB",
                "split very long records or store them as files",
            )
        return replace(plan, block_size=min(plan.block_size * 4, _MAX_BLOCK))
    if "unexpected field" in message and not plan.ignore_new_fields:
        note = "fields that first appear after the first block are not profiled"
        return replace(plan, ignore_new_fields=True, notes=(*plan.notes, note))
    if "Empty CSV file" in message or "Empty file" in message:
        raise ProfileError("the file is empty")
    mixed = jsontext.mixed_field(message)
    if mixed is not None and mixed[0] not in plan.json_text_fields:
        name, note = mixed
        fields = (*plan.json_text_fields, name)
        return replace(plan, json_text_fields=fields, notes=(*plan.notes, note))
    if _JSON_INT.search(message) and not plan.json_ints_as_floats:
        # The first block had only whole numbers in some field, a later one a fraction.
        note = "integer fields read as float64: a later value has a fraction"
        return replace(plan, json_ints_as_floats=True, notes=(*plan.notes, note))
    match = _CONVERSION.search(message)
    if match is None:
        raise ProfileError(f"not readable as {_describe(detected)}: {message[:300]}")
    index, failed_type = int(match[1]), match[2]
    return _widen(plan, index, failed_type, message)


def as_windows_1252(plan: ReadPlan) -> ReadPlan:
    """The plan that reads the file's text as Windows-1252 (it is not UTF-8).

    Windows-1252, not Latin-1: what a Western Windows machine writes, and Latin-1 wherever
    it differs from it only in bytes Latin-1 gives invisible control characters (€, “ ”).
    """
    note = textencodings.WINDOWS_1252_NOTE
    return replace(plan, encoding=textencodings.WINDOWS_1252, notes=(*plan.notes, note))


def _widen(plan: ReadPlan, index: int, failed_type: str, message: str) -> ReadPlan:
    """Read column ``index`` with a wider type than the first block suggested."""
    wider = "float64" if failed_type.startswith(("int", "uint")) else "string"
    value = re.search(r"invalid value '([^']*)'", message)
    if wider == "float64" and value and not _is_float(value[1]):
        wider = "string"
    types = dict(plan.column_types)
    key = f"#{index}"
    types[key] = wider
    note = f"column #{index} read as {wider}: later rows do not fit {failed_type}"
    return replace(plan, column_types=tuple(types.items()), notes=(*plan.notes, note))


def missing_texts() -> list[str]:
    """The texts a CSV number column reads as missing: pyarrow's (empty, ``NA``, ``NULL``,
    ``N/A``...) but the spellings of NaN, which are a value of the column, as in Parquet
    and DuckDB: the same data then profiles the same in both formats (``non_finite``)."""
    import pyarrow.csv as pa_csv

    return [t for t in pa_csv.ConvertOptions().null_values if t.lower().lstrip("-") != "nan"]


def unique_columns(schema: pa.Schema) -> tuple[pa.Schema, str | None]:
    """``schema`` with names of their own for repeated column names (Parquet allows them;
    every column keeps its values), and the note saying so (None: none repeats)."""
    names, note = csvshape.unique_names(schema.names, "column names")
    if note is None:
        return schema, None
    fields = [f.with_name(n) for f, n in zip(schema, names, strict=True)]
    return pa.schema(fields, metadata=schema.metadata), note


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _describe(detected: Detected) -> str:
    return ("gzip'd " if detected.gzip else "") + detected.format.upper()


# --------------------------------------------------------------------------- reading


class BatchReader:
    """One pass over the file under one plan: its record batches, and what reading them found."""

    def __init__(
        self,
        opener: Opener,
        detected: Detected,
        plan: ReadPlan,
        *,
        batch_rows: int,
        part: Part | None = None,
    ):
        self.opener = opener
        self.part = part or Part()
        self.detected = detected
        self.plan = plan
        self.batch_rows = batch_rows  # Parquet
        self.ragged = 0
        self.runaway = 0  # bad rows that are many rows swallowed by an unclosed quote
        self.delimiter = ","
        self.notes: list[str] = list(plan.shape.notes)
        self.streams: list[IO[bytes]] = []
        self.schema: pa.Schema | None = None
        #: A value or a bad row spanning lines (a quoted line end), or a bad row with an
        #: unclosed quote, was read: a part cut after a line end may be cut inside a value.
        self.multiline = False

    def batches(self) -> Generator[pa.RecordBatch, None, None]:
        """The file's record batches, from its start (:class:`Restart` when the plan is wrong)."""
        return self._batches(self._reopen())

    def close(self) -> None:
        """Close every stream this pass opened."""
        for stream in self.streams:
            stream.close()

    def _batches(self, stream: IO[bytes]) -> Generator[pa.RecordBatch, None, None]:
        fmt = self.detected.format
        if fmt in ("csv", "tsv"):
            delimiter = self.plan.shape.delimiter or csvshape.delimiter_of(fmt)
            yield from self._csv(stream, delimiter)
        elif fmt == "jsonl":
            yield from self._json(stream)
        else:
            yield from self._parquet(stream)

    def _csv(self, stream: IO[bytes], delimiter: str) -> Iterator[pa.RecordBatch]:
        # Each format's reader is imported when a file of that format is read: the
        # storage function's cold start loads only what the object needs.
        import pyarrow.csv as pa_csv

        shape, later = self.plan.shape, self.part.start > 0
        skip = 0 if later else shape.skip_rows
        block = min(self.plan.block_size, self.part.block_size or self.plan.block_size)
        read = pa_csv.ReadOptions(block_size=block, skip_rows=skip)
        if later:
            # The header is the first part's: read this range with its names and types.
            read.column_names = list(self.part.names)
        elif shape.column_names is not None:
            read.column_names = list(shape.column_names)
        if self.plan.encoding:
            read.encoding = self.plan.encoding
        parse = pa_csv.ParseOptions(
            delimiter=delimiter,
            quote_char='"' if self.plan.quoting else False,
            invalid_row_handler=self._skip_ragged,
        )
        self.delimiter = delimiter
        convert = pa_csv.ConvertOptions(null_values=missing_texts())
        if shape.include_columns is not None:
            convert.include_columns = list(shape.include_columns)
        if self.part.types:
            convert.column_types = dict(self.part.types)
        reader = pa_csv.open_csv(
            stream, read_options=read, parse_options=parse, convert_options=convert
        )
        if self.plan.column_types and not self.part.types:
            # Types are keyed by position (names may repeat); reopen with names known.
            names = reader.schema.names
            types = {names[int(k[1:])]: pa.type_for_alias(v) for k, v in self.plan.column_types}
            stream = self._reopen()
            convert.column_types = types
            reader = pa_csv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            )
        if not self.plan.encoding and any(pa.types.is_binary(t) for t in reader.schema.types):
            raise Restart(as_windows_1252(self.plan))
        self.schema = reader.schema
        for batch in reader:
            texts = csvshape.multiline_texts(batch) if self.plan.quoting else []
            self.multiline = self.multiline or bool(texts)
            fields = batch.num_columns
            if self.runaway or any(csvshape.runaway_quote(t, delimiter, fields) for t in texts):
                note = (
                    "a field opens a quote that never closes and swallowed the rows after it: "
                    "read without quoting"
                )
                plan = replace(self.plan, quoting=False, notes=(*self.plan.notes, note))
                raise Restart(plan)
            yield csvshape.empty_text_as_missing(batch)

    def _reopen(self) -> IO[bytes]:
        stream = self._open()
        if self.part.ranged:
            stream = RangeReader(stream, self.part.start, self.part.end)  # type: ignore[assignment]
        if self.detected.gzip:
            stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
        if self.detected.format == "parquet":
            return stream
        return RowLimitedReader(stream)  # type: ignore[return-value]

    def _open(self) -> IO[bytes]:
        stream = self.opener()
        self.streams.append(stream)
        return stream

    def _skip_ragged(self, row: Any) -> str:
        fields = len(self.schema) if self.schema is not None else 0
        if self.plan.quoting and ("\n" in row.text or row.text.count('"') % 2):
            # A bad row with a line end or an unclosed quote: where a part ends inside a
            # quoted value, its last row is such a row (its text lacks the last line end).
            self.multiline = True
        if self.plan.quoting and csvshape.runaway_quote(row.text, self.delimiter, fields):
            self.runaway += 1
        self.ragged += 1
        return "skip"

    def _json(self, stream: IO[bytes]) -> Iterator[pa.RecordBatch]:
        import pyarrow.json as pa_json

        read = pa_json.ReadOptions(block_size=self.plan.block_size)
        behaviour = "ignore" if self.plan.ignore_new_fields else "error"
        parse = pa_json.ParseOptions(unexpected_field_behavior=behaviour)
        lines = self._json_lines(stream, note=True)
        if self.plan.json_ints_as_floats:
            lines = self._json_with_floats(lines, read, parse)
        reader = pa_json.open_json(lines, read_options=read, parse_options=parse)
        self.schema = reader.schema
        yield from reader

    def _json_lines(self, stream: IO[bytes], *, note: bool) -> Any:
        """``stream`` as the JSON Lines the reader takes, rewritten as the plan says."""
        buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore[type-var]
        if jsonarray.starts_an_array(buffered.peek(64)):
            # Rows are the array's elements: the same as the file's JSON Lines equivalent.
            if note:
                self.notes.append(
                    "a JSON array of records: profiled as JSON Lines, one row per element"
                )
            buffered = io.BufferedReader(jsonarray.ArrayAsLines(buffered))
        if self.plan.json_text_fields:
            buffered = io.BufferedReader(
                jsontext.FieldsAsText(buffered, self.plan.json_text_fields)
            )
        return buffered

    def _json_with_floats(
        self, lines: Any, read: pa_json.ReadOptions, parse: pa_json.ParseOptions
    ) -> Any:
        """Fix the first block's schema with every integer field as float64; reopen."""
        import pyarrow.json as pa_json

        schema = pa_json.open_json(lines, read_options=read, parse_options=parse).schema
        fields = [
            pa.field(f.name, pa.float64()) if pa.types.is_integer(f.type) else f for f in schema
        ]
        parse.explicit_schema = pa.schema(fields)
        return self._json_lines(self._reopen(), note=False)

    def _parquet(self, stream: IO[bytes]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        try:
            # Unbuffered, single-threaded reads decode one column chunk at a time: a
            # file with big row groups otherwise peaks past the function's 512 MiB.
            parquet = pq.ParquetFile(stream, pre_buffer=False, buffer_size=1 << 20)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ProfileError(f"not a readable Parquet file: {exc}") from exc
        self.schema, note = unique_columns(parquet.schema_arrow)
        if note is not None:
            self.notes.append(note)
        groups = self.part.row_groups
        batches = parquet.iter_batches(
            batch_size=self.batch_rows,
            row_groups=None if groups is None else list(groups),
            use_threads=False,
        )
        if note is None:
            yield from batches
        else:
            yield from (batch.rename_columns(self.schema.names) for batch in batches)


_END = object()


def prefetched(items: Iterator[Any], depth: int = 1) -> Generator[Any, None, None]:
    """``items``, produced up to ``depth`` ahead on a thread of their own.

    pyarrow parses a block without the GIL, so reading the next block
    overlaps the sketches' work on this one: the two halves of profiling
    run on two cores, for the memory of one more block. Errors raised while
    producing (a restart, a parse error) are raised here, in order.
    """
    slots: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put((None, exc))

    worker = threading.Thread(target=produce, name="aletheia-profile-read", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()  # the reader's streams are closed only after it has stopped


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A later batch in the first batch's schema (JSON blocks may order fields differently)."""
    arrays = []
    for fld in schema:
        index = batch.schema.get_field_index(fld.name)
        if index < 0:
            arrays.append(pa.nulls(batch.num_rows, fld.type))
            continue
        column = batch.column(index)
        arrays.append(column if column.type == fld.type else column.cast(fld.type, safe=False))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
