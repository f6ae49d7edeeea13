"""Schema and statistics of a tabular data file, streamed in bounded memory.

The file is read in blocks (pyarrow's streaming CSV and JSON readers,
Parquet row batches); every column keeps a few fixed-size sketches
(:mod:`aletheia.stats.sketches`), so memory depends on the block size and the
number of columns, never on the number of rows. Distinct counts,
quantiles, histograms and top values are exact while they fit their
sketches and approximate beyond (the profile says which: ``distinct_exact``,
``top_exact``, ``quantiles_exact``).

What the reader had to interpret is said in ``notes`` (a header without the
row-name column, title lines, a JSON array read as JSON Lines); what it had
to skip or coerce is in ``warnings``. A file most of whose rows cannot be
read fails rather than reporting statistics of what little was left.

Bad input never raises anything but :class:`ProfileError`, whose message
is the reason recorded on the file's document.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import queue
import re
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import IO, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from aletheia.errors import AletheiaError
from aletheia.stats import csvshape, jsonarray
from aletheia.stats.rowlimit import RowLimitedReader
from aletheia.stats.sketches import DistinctHashes, FrequentValues, HyperLogLog, Moments, Reservoir

FORMATS = ("csv", "tsv", "jsonl", "parquet")
#: Quantiles reported for numeric columns (every 5 %).
QUANTILES = tuple(i / 20 for i in range(21))
_MAX_BLOCK = 16 << 20  # longest row accepted; rows beyond are reported, not read
_MAX_RESTARTS = 24
_TEXT_CUT = 64  # characters of a value kept in reports (top values, min/max, domains)
_COUNTER_CUT = 256  # characters of a string value used as a frequency key
_SNIFF_BYTES = 1 << 20  # of a CSV file, to find its header

Opener = Callable[[], IO[bytes]]


class ProfileError(AletheiaError):
    """The file cannot be profiled; the message is the reason recorded for the user."""


class UnsupportedFormatError(ProfileError):
    """The object is not a data file aletheia profiles (CSV/TSV, JSON Lines, Parquet)."""


@dataclass(frozen=True)
class ProfileOptions:
    """Knobs of the profiler; the defaults fit a 512 MiB function comfortably."""

    # 2 MiB blocks: 1.5x faster than 1 MiB on a 1 GB CSV (fewer per-block Python
    # round trips) at ~320 MiB peak; 4 MiB gained little more for ~90 MiB extra.
    block_size: int = 2 << 20
    batch_rows: int = 65_536  # Parquet
    sample_rows: int = 100
    reservoir: int = 4096
    top_k: int = 20
    counter_capacity: int = 1000
    # Distinct counts are exact up to this many values per column (a sorted set of
    # 8-byte hashes), within a budget for all columns together (~32 MiB).
    distinct_exact_max: int = 100_000
    distinct_budget: int = 4_000_000
    histogram_bins: int = 20
    max_columns: int = 1000
    domain_max: int = 20
    seed: int = 0


@dataclass(frozen=True)
class Detected:
    """A file's data format and compression."""

    format: str
    gzip: bool = False


# --------------------------------------------------------------------------- format detection

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


# --------------------------------------------------------------------------- the profile


@dataclass
class Profile:
    """What the profiler learned about one file; ``to_dict`` is JSON- and Firestore-safe."""

    format: str
    gzip: bool
    rows: int
    columns_total: int
    columns: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True when some input was skipped or coerced (see ``warnings``)."""
        return bool(self.warnings)

    def schema(self) -> list[dict[str, Any]]:
        """Columns with inferred type, nullability and (small string) domain."""
        out = []
        for col in self.columns:
            entry = {"name": col["name"], "type": col["type"], "nullable": col["missing"] > 0}
            if "domain" in col:
                entry["domain"] = col["domain"]
            out.append(entry)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The full profile (every profiled column)."""
        return {
            "format": self.format,
            "gzip": self.gzip,
            "rows": self.rows,
            "columns_total": self.columns_total,
            "columns_profiled": len(self.columns),
            "schema": self.schema(),
            "stats": self.columns,
            "warnings": self.warnings,
            "notes": self.notes,
        }

    def sample_jsonl(self) -> bytes:
        """The row sample as JSON Lines."""
        return b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in self.sample)


def profile(
    open_stream: Opener, detected: Detected, options: ProfileOptions | None = None
) -> Profile:
    """Profile the file ``open_stream()`` yields (it may be called again to restart).

    Restarts happen when a later block contradicts the types inferred from
    the first one (an int column meeting ``1.5``), when text is not UTF-8,
    or when a row does not fit in a block; each is noted in ``warnings``.
    """
    opts = options or ProfileOptions()
    plan = _Plan(block_size=opts.block_size)
    if detected.format in ("csv", "tsv"):
        head, complete = _head(open_stream, detected)
        delimiter = "\t" if detected.format == "tsv" else ","
        plan = replace(plan, shape=csvshape.sniff(head, delimiter, complete))
    for _ in range(_MAX_RESTARTS):
        try:
            return _Run(open_stream, detected, opts, plan).execute()
        except _Restart as restart:
            plan = restart.plan
        except pa.ArrowInvalid as exc:
            plan = _replan(plan, detected, str(exc))
    raise ProfileError(f"gave up after {_MAX_RESTARTS} restarts: {'; '.join(plan.notes)}")


@dataclass(frozen=True)
class _Plan:
    """How to read the file this time (what earlier attempts taught us)."""

    block_size: int
    column_types: tuple[tuple[str, str], ...] = ()
    encoding: str | None = None
    ignore_new_fields: bool = False
    json_ints_as_floats: bool = False
    quoting: bool = True
    notes: tuple[str, ...] = ()
    shape: csvshape.CsvShape = field(default_factory=csvshape.CsvShape)


def _head(open_stream: Opener, detected: Detected) -> tuple[bytes, bool]:
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


class _Restart(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, plan: _Plan) -> None:
        self.plan = plan


_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+)")
_JSON_INT = re.compile(r"Failed to convert JSON to u?int\d+")


def _replan(plan: _Plan, detected: Detected, message: str) -> _Plan:
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
    if _JSON_INT.search(message) and not plan.json_ints_as_floats:
        # The first block had only whole numbers in some field, a later one a fraction.
        note = "integer fields read as float64: a later value has a fraction"
        return replace(plan, json_ints_as_floats=True, notes=(*plan.notes, note))
    match = _CONVERSION.search(message)
    if match is None:
        raise ProfileError(f"not readable as {_describe(detected)}: {message[:300]}")
    index, failed_type = int(match[1]), match[2]
    return _widen(plan, index, failed_type, message)


def _widen(plan: _Plan, index: int, failed_type: str, message: str) -> _Plan:
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


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _describe(detected: Detected) -> str:
    return ("gzip'd " if detected.gzip else "") + detected.format.upper()


# --------------------------------------------------------------------------- reading


class _Run:
    """One pass over the file under one plan."""

    def __init__(self, opener: Opener, detected: Detected, opts: ProfileOptions, plan: _Plan):
        self.opener = opener
        self.detected = detected
        self.opts = opts
        self.plan = plan
        self.ragged = 0
        self.runaway = 0  # bad rows that are many rows swallowed by an unclosed quote
        self.delimiter = ","
        self.notes: list[str] = list(plan.shape.notes)
        self.streams: list[IO[bytes]] = []
        self.schema: pa.Schema | None = None
        self.rng = np.random.default_rng(opts.seed)

    def execute(self) -> Profile:
        try:
            with contextlib.closing(_prefetched(self._batches(self._reopen()))) as batches:
                return self._profile_batches(batches)
        except (EOFError, gzip.BadGzipFile) as exc:
            raise ProfileError(f"corrupt gzip stream: {exc}") from exc
        except jsonarray.NotRecordsError as exc:
            raise ProfileError(exc.message, exc.hint) from exc
        finally:
            for stream in self.streams:
                stream.close()

    def _batches(self, stream: IO[bytes]) -> Iterator[pa.RecordBatch]:
        fmt = self.detected.format
        if fmt in ("csv", "tsv"):
            expected = "\t" if fmt == "tsv" else ","
            yield from self._csv(stream, self.plan.shape.delimiter or expected)
        elif fmt == "jsonl":
            yield from self._json(stream)
        else:
            yield from self._parquet(stream)

    def _csv(self, stream: IO[bytes], delimiter: str) -> Iterator[pa.RecordBatch]:
        shape = self.plan.shape
        read = pa_csv.ReadOptions(block_size=self.plan.block_size, skip_rows=shape.skip_rows)
        if shape.column_names is not None:
            read.column_names = list(shape.column_names)
        if self.plan.encoding:
            read.encoding = self.plan.encoding
        parse = pa_csv.ParseOptions(
            delimiter=delimiter,
            quote_char='"' if self.plan.quoting else False,
            invalid_row_handler=self._skip_ragged,
        )
        self.delimiter = delimiter
        convert = pa_csv.ConvertOptions()
        if shape.include_columns is not None:
            convert.include_columns = list(shape.include_columns)
        reader = pa_csv.open_csv(
            stream, read_options=read, parse_options=parse, convert_options=convert
        )
        if self.plan.column_types:
            # Types are keyed by position (names may repeat); reopen with names known.
            names = reader.schema.names
            types = {names[int(k[1:])]: pa.type_for_alias(v) for k, v in self.plan.column_types}
            stream = self._reopen()
            convert.column_types = types
            reader = pa_csv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            )
        if not self.plan.encoding and any(pa.types.is_binary(t) for t in reader.schema.types):
            note = "text is not valid UTF-8: decoded as Latin-1"
            raise _Restart(replace(self.plan, encoding="latin-1", notes=(*self.plan.notes, note)))
        self.schema = reader.schema
        for batch in reader:
            if self.plan.quoting and (self.runaway or csvshape.holds_rows(batch, delimiter)):
                note = (
                    "a field opens a quote that never closes and swallowed the rows after it: "
                    "read without quoting"
                )
                plan = replace(self.plan, quoting=False, notes=(*self.plan.notes, note))
                raise _Restart(plan)
            yield csvshape.empty_text_as_missing(batch)

    def _reopen(self) -> IO[bytes]:
        stream = self._open()
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
        if self.plan.quoting and csvshape.runaway_quote(row.text, self.delimiter, fields):
            self.runaway += 1
        self.ragged += 1
        return "skip"

    def _json(self, stream: IO[bytes]) -> Iterator[pa.RecordBatch]:
        read = pa_json.ReadOptions(block_size=self.plan.block_size)
        behaviour = "ignore" if self.plan.ignore_new_fields else "error"
        parse = pa_json.ParseOptions(unexpected_field_behavior=behaviour)
        buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore[type-var]
        if jsonarray.starts_an_array(buffered.peek(64)):
            # Rows are the array's elements: the same as the file's JSON Lines equivalent.
            self.notes.append(
                "a JSON array of records: profiled as JSON Lines, one row per element"
            )
            buffered = jsonarray.ArrayAsLines(buffered)
        if self.plan.json_ints_as_floats:
            buffered = self._json_with_floats(buffered, read, parse)
        reader = pa_json.open_json(buffered, read_options=read, parse_options=parse)
        self.schema = reader.schema
        yield from reader

    def _json_with_floats(
        self, buffered: Any, read: pa_json.ReadOptions, parse: pa_json.ParseOptions
    ) -> Any:
        """Fix the first block's schema with every integer field as float64; reopen."""
        schema = pa_json.open_json(buffered, read_options=read, parse_options=parse).schema
        fields = [
            pa.field(f.name, pa.float64()) if pa.types.is_integer(f.type) else f for f in schema
        ]
        parse.explicit_schema = pa.schema(fields)
        reopened: Any = io.BufferedReader(self._reopen())  # type: ignore[type-var]
        if isinstance(buffered, jsonarray.ArrayAsLines):
            reopened = jsonarray.ArrayAsLines(reopened)
        return reopened

    def _parquet(self, stream: IO[bytes]) -> Iterator[pa.RecordBatch]:
        try:
            # Unbuffered, single-threaded reads decode one column chunk at a time: a
            # file with big row groups otherwise peaks past the function's 512 MiB.
            parquet = pq.ParquetFile(stream, pre_buffer=False, buffer_size=1 << 20)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ProfileError(f"not a readable Parquet file: {exc}") from exc
        self.schema = parquet.schema_arrow
        yield from parquet.iter_batches(batch_size=self.opts.batch_rows, use_threads=False)

    # ----------------------------------------------------------------------- aggregating

    def _profile_batches(self, batches: Iterator[pa.RecordBatch]) -> Profile:
        columns: list[_Column] | None = None
        sample = _RowSample(self.opts.sample_rows, self.rng)
        hasher = duckdb.connect()
        rows = 0
        schema: pa.Schema | None = None
        for batch in batches:
            if columns is None:
                schema = batch.schema
                columns = self._columns(schema)
            elif batch.schema != schema:
                batch = _conform(batch, schema)
            rows += batch.num_rows
            if batch.num_rows == 0:
                continue
            hashes = _hashes(hasher, batch, len(columns))
            for i, column in enumerate(columns):
                column.add(batch.column(i), hashes[i])
            sample.add(batch)
        if columns is None:
            # A reader with no batches still has a schema (e.g. a header-only CSV).
            schema = self.schema
            if schema is None or len(schema) == 0:
                raise ProfileError("the file has no rows and no columns")
            columns = self._columns(schema)
        warnings = list(self.plan.notes)
        if self.ragged > rows:
            # Statistics of the few rows that fit would describe a file that does not exist.
            assert self.schema is not None
            raise ProfileError(
                f"{self.ragged} of {self.ragged + rows} rows have a different number of fields "
                f"than the header ({len(self.schema)} fields)",
                "check the delimiter and that the first line is the header",
            )
        if self.ragged:
            warnings.append(f"{self.ragged} row(s) with the wrong number of fields were skipped")
        if rows == 0:
            warnings.append("the file has a header but no rows")
        assert schema is not None
        if len(schema) > len(columns):
            warnings.append(f"only the first {len(columns)} of {len(schema)} columns profiled")
        return Profile(
            format=self.detected.format,
            gzip=self.detected.gzip,
            rows=rows,
            columns_total=len(schema),
            columns=[c.result(self.opts) for c in columns],
            warnings=warnings,
            sample=sample.rows(),
            notes=self.notes,
        )

    def _columns(self, schema: pa.Schema) -> list[_Column]:
        limit = min(len(schema), self.opts.max_columns)
        share = self.opts.distinct_budget // max(limit, 1)
        exact = max(self.opts.counter_capacity, min(self.opts.distinct_exact_max, share))
        return [_Column(schema.field(i), self.opts, self.rng, exact) for i in range(limit)]


_END = object()


def _prefetched(items: Iterator[Any], depth: int = 1) -> Generator[Any, None, None]:
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


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
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


def _hashes(con: duckdb.DuckDBPyConnection, batch: pa.RecordBatch, n: int) -> list[np.ndarray]:
    """64-bit hashes of each of the first ``n`` columns' non-null values (DuckDB's ``hash``)."""
    if n == 0:
        return []
    renamed = pa.RecordBatch.from_arrays(
        [batch.column(i) for i in range(n)], names=[f"c{i}" for i in range(n)]
    )
    con.register("batch", renamed)
    try:
        result = con.sql(
            "select " + ", ".join(f"hash(c{i}) as h{i}" for i in range(n)) + " from batch"
        ).fetchnumpy()
    finally:
        con.unregister("batch")
    out = []
    for i in range(n):
        column = batch.column(i)
        values = np.asarray(result[f"h{i}"], dtype=np.uint64)
        if column.null_count:
            values = values[column.is_valid().to_numpy(zero_copy_only=False)]
        out.append(values)
    return out


class _Column:
    """Running statistics of one column."""

    def __init__(
        self, fld: pa.Field, opts: ProfileOptions, rng: np.random.Generator, exact_limit: int
    ) -> None:
        self.field = fld
        self.kind = _kind(fld.type)
        self.count = 0
        self.missing = 0
        self.distinct = DistinctHashes(exact_limit)
        self.hll = HyperLogLog()
        self.freq = FrequentValues(opts.counter_capacity)
        self.moments = Moments()
        self.reservoir = Reservoir(opts.reservoir, rng)
        self.minimum: Any = None
        self.maximum: Any = None
        self.zeros = 0
        self.non_finite = 0
        self.trues = 0
        self.lengths = Moments()
        self.min_len: int | None = None
        self.max_len: int | None = None
        self.empty = 0

    def add(self, array: pa.Array, hashes: np.ndarray) -> None:
        self.count += len(array)
        self.missing += array.null_count
        valid = array.drop_null() if array.null_count else array
        if len(valid) == 0:
            return
        self.distinct.add_hashes(hashes)
        self.hll.add_hashes(hashes)
        if self.kind == "numeric":
            self._add_numeric(valid)
        elif self.kind == "string":
            valid = self._add_string(valid)
        elif self.kind == "bool":
            self.trues += int(pc.sum(valid).as_py() or 0)
        if self.kind in ("numeric", "string", "bool", "temporal"):
            self._add_min_max(valid)
        if self.kind in ("string", "bool"):
            self._add_counts(valid)

    def _add_numeric(self, valid: pa.Array) -> None:
        values = valid.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        finite = np.isfinite(values)
        if not finite.all():
            self.non_finite += int((~finite).sum())
            values = values[finite]
        self.zeros += int(np.count_nonzero(values == 0))
        self.moments.add(values)
        self.reservoir.add(values)

    def _add_string(self, valid: pa.Array) -> pa.Array:
        lengths = pc.binary_length(valid) if pa.types.is_binary(valid.type) else None
        if lengths is None:
            lengths = pc.utf8_length(valid)
        as_np = lengths.to_numpy(zero_copy_only=False).astype(np.float64)
        self.lengths.add(as_np)
        lo, hi = int(as_np.min()), int(as_np.max())
        self.min_len = lo if self.min_len is None else min(self.min_len, lo)
        self.max_len = hi if self.max_len is None else max(self.max_len, hi)
        self.empty += int(np.count_nonzero(as_np == 0))
        if hi > _COUNTER_CUT and pa.types.is_string(valid.type):
            # Keep counters and min/max small even for megabyte values.
            valid = pc.utf8_slice_codeunits(valid, 0, _COUNTER_CUT)
        return valid

    def _add_min_max(self, valid: pa.Array) -> None:
        if self.kind == "numeric" and pa.types.is_floating(valid.type):
            valid = pc.drop_null(pc.if_else(pc.is_finite(valid), valid, None))
            if len(valid) == 0:
                return
        extremes = pc.min_max(valid)
        lo, hi = extremes["min"].as_py(), extremes["max"].as_py()
        if lo is not None and (self.minimum is None or lo < self.minimum):
            self.minimum = lo
        if hi is not None and (self.maximum is None or hi > self.maximum):
            self.maximum = hi

    def _add_counts(self, valid: pa.Array) -> None:
        """Top values (strings and booleans: numbers and times report none)."""
        counted = pc.value_counts(valid)
        values, counts = counted.field("values"), counted.field("counts").to_numpy()
        cap = self.freq.capacity
        complete = len(counts) <= cap
        if not complete:
            # Only the batch's most frequent values reach the counters (converting a
            # whole high-cardinality batch to Python would dominate the run time).
            top = np.argpartition(-counts, cap)[:cap]
            values, counts = values.take(pa.array(top)), counts[top]
        self.freq.add_counts(values.to_pylist(), counts.tolist(), complete=complete)

    def result(self, opts: ProfileOptions) -> dict[str, Any]:
        present = self.count - self.missing
        out: dict[str, Any] = {
            "name": self.field.name,
            "type": str(self.field.type),
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "distinct": self._distinct(present),
            "distinct_exact": self.distinct.exact,
        }
        if present == 0:
            return out
        if self.kind in ("numeric", "string", "bool", "temporal"):
            out["min"] = _plain(self.minimum)
            out["max"] = _plain(self.maximum)
        if self.kind == "numeric":
            out.update(self._numeric_result(opts))
        elif self.kind == "string":
            out.update(self._string_result(opts, self.freq.exact))
        elif self.kind == "bool":
            out["true"] = self.trues
            out["false"] = present - self.trues
            out["top"] = _top(self.freq, opts.top_k)
            out["top_exact"] = self.freq.exact
        return out

    def _distinct(self, present: int) -> int:
        """Exact while the hash set held every value; else HyperLogLog's estimate, bounded.

        The estimate has ~0.8 % error either way, so alone it can exceed the
        number of values (400,000 distinct ids estimated at 415,263): it is
        clamped between what is known for sure, the distinct hashes seen before
        the set overflowed and the number of non-missing values.
        """
        if self.distinct.exact:
            return self.distinct.count
        return min(max(self.hll.estimate(), self.distinct.floor), present)

    def _numeric_result(self, opts: ProfileOptions) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mean": _finite(self.moments.mean) if self.moments.n else None,
            "std": _finite(self.moments.std),
            "zeros": self.zeros,
            "non_finite": self.non_finite,
            "quantiles_exact": self.moments.n <= opts.reservoir,
        }
        values = self.reservoir.values
        if values.size:
            qs = np.quantile(values, QUANTILES)
            out["quantiles"] = {_q_key(q): float(v) for q, v in zip(QUANTILES, qs, strict=True)}
            out["histogram"] = _histogram(values, self.moments.n, opts.histogram_bins)
        return out

    def _string_result(self, opts: ProfileOptions, exact: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "min_length": self.min_len,
            "max_length": self.max_len,
            "mean_length": _finite(self.lengths.mean),
            "empty": self.empty,
            "top": _top(self.freq, opts.top_k),
            "top_exact": exact,
        }
        if exact and len(self.freq.counts) <= opts.domain_max:
            out["domain"] = sorted(_cut(str(v)) for v in self.freq.counts)
        return out


def _kind(dtype: pa.DataType) -> str:
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_binary(dtype):
        return "string"
    if pa.types.is_temporal(dtype):
        return "temporal"
    return "other"


def _q_key(q: float) -> str:
    return f"p{round(q * 100)}"


def _histogram(values: np.ndarray, total: int, bins: int) -> dict[str, Any]:
    """Equal-width bins over the sample, counts scaled to the column's row count."""
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return {"edges": [lo, hi], "counts": [total]}
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    scale = total / values.size
    return {"edges": [float(e) for e in edges], "counts": [round(c * scale) for c in counts]}


def _top(freq: FrequentValues, k: int) -> list[dict[str, Any]]:
    return [{"value": _plain(v), "count": c} for v, c in freq.top(k)]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _cut(text: str) -> str:
    return text if len(text) <= _TEXT_CUT else text[: _TEXT_CUT - 1] + "…"


def _plain(value: Any) -> Any:
    """A JSON- and Firestore-safe scalar (long text cut, times as ISO strings)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int)) or value is None:
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return _cut(value.decode("latin-1"))
    return _cut(str(value))


# --------------------------------------------------------------------------- row sample


class _RowSample:
    """A uniform random sample of whole rows (priority reservoir over record batches)."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.keys = np.empty(0)
        self.table: pa.Table | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        if self.size == 0:
            return
        keys = self.rng.random(batch.num_rows)
        if self.keys.size >= self.size:
            chosen = np.nonzero(keys > self.keys.min())[0]
        else:
            chosen = np.argsort(-keys)[: self.size]
        if chosen.size == 0:
            return
        picked = pa.Table.from_batches([batch.take(pa.array(chosen))])
        table = (
            picked
            if self.table is None
            else pa.concat_tables([self.table, picked], promote_options="permissive")
        )
        all_keys = np.concatenate([self.keys, keys[chosen]])
        if all_keys.size > self.size:
            top = np.argsort(-all_keys)[: self.size]
            table, all_keys = table.take(pa.array(top)), all_keys[top]
        self.table, self.keys = table.combine_chunks(), all_keys

    def rows(self) -> list[dict[str, Any]]:
        if self.table is None:
            return []
        return [{k: _sample_value(v) for k, v in row.items()} for row in self.table.to_pylist()]


def _sample_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
        return value if len(text) <= 1024 else _cut(text)
    if isinstance(value, str) and len(value) > 1024:
        return value[:1023] + "…"
    return _plain(value) if not isinstance(value, str) else value


def open_bytes(data: bytes) -> Opener:
    """An opener over in-memory bytes (for small files and tests)."""
    return lambda: io.BytesIO(data)


def main(argv: list[str] | None = None) -> None:
    """``python -m aletheia.stats.profiling FILE [--name N]``: a local file's profile as JSON."""
    import argparse
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(description="Profile a local data file in bounded memory.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--name", help="original name, when the file's own lacks the extension")
    parser.add_argument("--block-size", type=int, default=ProfileOptions.block_size)
    args = parser.parse_args(argv)
    with args.file.open("rb") as fh:
        head = fh.read(8)
    detected = detect_format(args.name or args.file.name, None, head)
    opts = ProfileOptions(block_size=args.block_size)
    result = profile(lambda: args.file.open("rb"), detected, opts)
    json.dump(result.to_dict(), sys.stdout, default=str)


if __name__ == "__main__":
    main()
