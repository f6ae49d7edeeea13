"""A stored data file as Spark reads it: the way the storage function's readers read it.

The function sniffs a CSV file's first lines (:func:`aletheia.stats.csvshape.sniff_file`):
title lines before the header, ``;`` or ``|`` separators, R's unnamed row-name
column, a delimiter ending every row, repeated or empty header names, a
byte-order mark (UTF-16's; Spark knows UTF-8's), and text that is not UTF-8 (read as
Windows-1252). Spark's CSV reader knows none of this: read plainly, a title
line became the header, a ``;`` file one column, and Windows-1252 text was
garbled. :func:`prepare` asks the same questions and answers them in Spark's
terms: the separator, the names, the columns kept; what Spark cannot do (skip
lines, decode other encodings as the function does) is done by rewriting the
local copy once, as UTF-8 from its header on. A Parquet file whose column
names repeat (Spark refuses it) is rewritten with the names the function
gives them. Types are widened as the function's readers type them
(:func:`read`).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from aletheia.stats import csvshape, readers, textencodings
from aletheia.stats.formats import Detected, ProfileError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: Bytes decoded or copied at a time.
_CHUNK = 4 << 20


@dataclass(frozen=True)
class SparkSource:
    """What Spark reads and how: ``location`` (a local path or a ``gs://`` URI) in
    ``detected``'s format, UTF-8, its header on its first line unless ``column_names``
    name the columns; ``include_columns`` are those kept. ``notes`` say how the file
    is laid out and ``warnings`` what its text needed, where the function's profile
    says the same."""

    location: str
    detected: Detected
    delimiter: str = ","
    column_names: tuple[str, ...] | None = None
    include_columns: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def prepare(path: Path, detected: Detected, workdir: Path) -> SparkSource:
    """The local file ``path`` as Spark should read it; a rewritten copy in ``workdir``
    when lines must be skipped or the text is not plain UTF-8."""
    if detected.format == "parquet":
        return _parquet(path, workdir)
    if detected.format not in ("csv", "tsv"):
        return SparkSource(str(path), detected)
    head, complete = readers.head(lambda: path.open("rb"), detected)  # what the function sniffs
    shape, encoding = csvshape.sniff_file(head, detected.format, complete)
    warnings: tuple[str, ...] = ()
    if encoding is None and not _is_utf8(path, detected):  # UTF-8's own mark is Spark's too
        encoding, warnings = textencodings.WINDOWS_1252, (textencodings.WINDOWS_1252_NOTE,)
    source = SparkSource(
        str(path),
        detected,
        shape.delimiter or csvshape.delimiter_of(detected.format),
        shape.column_names,
        shape.include_columns,
        shape.notes,
        warnings,
    )
    if encoding is None and shape.skip_rows == 0:
        return source  # as it is stored: nothing to rewrite
    workdir.mkdir(parents=True, exist_ok=True)
    rewritten = workdir / f"from-header.{detected.format}"
    _rewrite(path, detected, encoding or "utf-8", source.delimiter, shape.skip_rows, rewritten)
    return replace(source, location=str(rewritten), detected=Detected(detected.format))


def _parquet(path: Path, workdir: Path) -> SparkSource:
    """A Parquet file as Spark can read it: Spark refuses two columns of one name, which
    Parquet allows (pandas writes them); such a file is rewritten with the names the
    function gives them (``a, a_1``), one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    detected = Detected("parquet")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ProfileError(f"not a readable Parquet file: {exc}") from exc
    schema, note = readers.unique_columns(parquet.schema_arrow)
    if note is None:
        return SparkSource(str(path), detected)
    workdir.mkdir(parents=True, exist_ok=True)
    rewritten = workdir / "renamed.parquet"
    with pq.ParquetWriter(rewritten, schema) as writer:
        for group in range(parquet.num_row_groups):
            writer.write_table(parquet.read_row_group(group).rename_columns(schema.names))
    return SparkSource(str(rewritten), detected, notes=(note,))


def prepare_remote(uri: str, head: bytes, complete: bool, detected: Detected) -> SparkSource:
    """An object Spark reads in place (a cluster), whose first bytes are ``head``: the
    separator and names apply; lines to skip or other encodings need the local copy."""
    if detected.format not in ("csv", "tsv"):
        return SparkSource(uri, detected)
    shape, encoding = csvshape.sniff_file(head, detected.format, complete)
    if encoding is not None or shape.skip_rows:
        raise ProfileError(
            "this CSV needs lines skipped or its text decoded before Spark can read it "
            f"({'; '.join(shape.notes)})",
            "run the job in local mode (--master local[*]) for this file",
        )
    delimiter = shape.delimiter or csvshape.delimiter_of(detected.format)
    return SparkSource(uri, detected, delimiter, None, None, shape.notes)


def read(spark: SparkSession, source: SparkSource) -> DataFrame:
    """The file as a DataFrame, named and typed as the function's readers do.

    Spark infers 32-bit integers and floats where pyarrow's readers infer
    64-bit ones; they are widened so a column's type does not depend on the
    engine (validation would report a type change between versions). Empty
    fields are missing, as the function (and DuckDB) read them.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    fmt = source.detected.format
    if fmt == "parquet":
        return spark.read.parquet(source.location)
    if fmt in ("csv", "tsv"):
        df = spark.read.csv(
            source.location,
            header=source.column_names is None,
            inferSchema=True,
            sep=source.delimiter,
            mode="PERMISSIVE",
        )
        if source.column_names is not None and len(df.columns) == len(source.column_names):
            df = df.toDF(*source.column_names)
        if source.include_columns is not None:
            df = df.select(*(F.col(f"`{name}`") for name in source.include_columns))
        df = _numbers_as_numbers(df)
    else:
        df = spark.read.json(source.location)
    narrow_int = (T.ByteType, T.ShortType, T.IntegerType)
    columns = []
    for fld in df.schema.fields:
        col = F.col(f"`{fld.name}`")
        if isinstance(fld.dataType, narrow_int):
            col = col.cast(T.LongType())
        elif isinstance(fld.dataType, T.FloatType):
            col = col.cast(T.DoubleType())
        columns.append(col.alias(fld.name))
    return df.select(*columns)


#: A number as the function's CSV reader takes one, NaN and infinity spelled out included.
_NUMBER = r"^[+-]?(([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))$"
_INTEGER = r"^[+-]?[0-9]+$"


def _numbers_as_numbers(df: DataFrame) -> DataFrame:
    """Text columns that the function reads as numbers, cast to them.

    Spark's reader knows one missing text (empty) and one NaN (``NaN``): a number column
    with ``NA``, ``NULL`` or ``nan`` in it comes out as text, where the function reads
    numbers with missing values (:func:`aletheia.stats.readers.missing_texts`), and a
    column of missing texts alone as missing values. One pass over the text columns
    decides which are numbers, and integers.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    texts = [f.name for f in df.schema.fields if isinstance(f.dataType, T.StringType)]
    if not texts:
        return df
    missing = readers.missing_texts()
    tallies = []
    for k, name in enumerate(texts):
        col = F.col(f"`{name}`")
        present = col.isNotNull() & ~col.isin(missing)
        tallies += [
            F.sum(F.when(present, 1).otherwise(0)).alias(f"present{k}"),
            F.sum(F.when(present & ~col.rlike(_NUMBER), 1).otherwise(0)).alias(f"text{k}"),
            F.sum(F.when(present & ~col.rlike(_INTEGER), 1).otherwise(0)).alias(f"fraction{k}"),
        ]
    counts = df.agg(*tallies).first()
    assert counts is not None  # an aggregate has its one row
    cast: dict[str, T.DataType] = {}
    for k, name in enumerate(texts):
        if not counts[f"present{k}"]:
            cast[name] = T.NullType()  # nothing but missing texts, which the function reads so
        elif not counts[f"text{k}"]:
            cast[name] = T.DoubleType() if counts[f"fraction{k}"] else T.LongType()
    if not cast:
        return df

    def typed(name: str) -> Column:
        col = F.col(f"`{name}`")
        if name not in cast:
            return col
        if isinstance(cast[name], T.NullType):
            return F.lit(None).alias(name)
        return F.when(col.isin(missing), None).otherwise(col.cast(cast[name])).alias(name)

    return df.select(*(typed(n) for n in df.columns))


@contextlib.contextmanager
def _opened(path: Path, detected: Detected) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed when it is gzip'd."""
    with path.open("rb") as raw:
        if detected.gzip:
            with gzip.GzipFile(fileobj=raw) as unpacked:
                yield unpacked  # type: ignore[misc]
        else:
            yield raw


def _is_utf8(path: Path, detected: Detected) -> bool:
    """Whether the whole (decompressed) file decodes as UTF-8: one pass, in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with _opened(path, detected) as stream:
        try:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _rewrite(
    path: Path, detected: Detected, encoding: str, delimiter: str, skip: int, into: Path
) -> None:
    """``path``'s text as UTF-8 after its first ``skip`` records, counted as the sniffer
    counts them (a quoted field may span lines); line ends are kept as they are."""
    with _opened(path, detected) as stream:
        text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        records = csv.reader(text, delimiter=delimiter)  # pulls one line at a time
        for _ in range(skip):
            next(records, None)
        with into.open("w", encoding="utf-8", newline="") as out:
            shutil.copyfileobj(text, out, _CHUNK)
