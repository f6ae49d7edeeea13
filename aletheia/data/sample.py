"""A deterministic sample of a dataset version, registered as its own dataset.

Tables (``.csv``, ``.tsv``, ``.parquet``/``.pq``; compressed ones are
files like any other) keep the rows whose index,
hashed with the seed, falls below the fraction; every other file is kept
whole or left out by a hash of its path and the seed. Hashes, not a random
generator: the same version, fraction and seed give the same rows, files
and bytes on any machine, and a larger fraction keeps every row a smaller
one kept. Tables are streamed in batches through pyarrow, so a file larger
than memory can be sampled; CSV cells are read and written as text, so
values are not reformatted (quoting may be). A sampled table keeps its
header and schema even when no row is picked; a "table" pyarrow cannot read
(empty, ragged) is sampled as a whole file, and counted.

The sample is added like any data (:meth:`~aletheia.data.datasets.DatasetStore.add`)
with ``sampled_from: {dataset, version, fraction, seed}`` committed on its
version and its dataset document; :func:`samples_of` lists the samples of a
dataset (its lineage).
"""

from __future__ import annotations

import csv as stdcsv
import hashlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aletheia.cloud import layout
from aletheia.data.datasets import AddResult, DatasetStore
from aletheia.data.scan import scan_tree
from aletheia.errors import ValidationError

#: Rows read per batch while sampling a table.
BATCH_ROWS = 65_536
_CSV = {".csv": ",", ".tsv": "\t"}
_PARQUET = {".parquet", ".pq"}


def parse_fraction(text: str) -> float:
    """``"1%"`` → 0.01, ``"0.25"`` → 0.25; must be above 0 and at most 1 (100%)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:  # also false for nan
        raise ValidationError(
            f"fraction {text!r} is not a share of the data",
            "pass a percentage (1%) or a number above 0 and at most 1 (0.01)",
        )
    return value


def _seed_key(seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"aletheia-sample:{seed}".encode()).digest()[:8], "big")


def row_keys(start: int, count: int, seed: int) -> Any:
    """Uniform keys in [0, 1) of rows ``start .. start+count-1`` (splitmix64 of index + seed)."""
    import numpy as np

    with np.errstate(over="ignore"):
        x = np.arange(start, start + count, dtype=np.uint64) + np.uint64(_seed_key(seed))
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def path_key(path: str, seed: int) -> float:
    """A uniform key in [0, 1) of a file's relative path and the seed."""
    digest = hashlib.sha256(f"{seed}\0{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def sample_tree(src: Path, dst: Path, fraction: float, seed: int) -> dict[str, int]:
    """Write the sample of the files under ``src`` into ``dst``; returns counts."""
    counts = {
        "tables": 0,
        "rows_in": 0,
        "rows_out": 0,
        "files_kept": 0,
        "files_dropped": 0,
        "tables_unreadable": 0,
    }
    for rel, path in scan_tree(src):
        out = dst / rel
        suffix = Path(rel).suffix.lower()
        if suffix in _CSV or suffix in _PARQUET:
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                seen, kept = (
                    _sample_csv(path, out, _CSV[suffix], fraction, seed)
                    if suffix in _CSV
                    else _sample_parquet(path, out, fraction, seed)
                )
            except (ValueError, OSError):  # pyarrow.ArrowInvalid is a ValueError
                # An empty or malformed "table" is data like any file: sampled whole, by its
                # path, rather than failing the sample of everything else.
                out.unlink(missing_ok=True)
                counts["tables_unreadable"] += 1
            else:
                counts["tables"] += 1
                counts["rows_in"] += seen
                counts["rows_out"] += kept
                continue
        if path_key(rel, seed) < fraction:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
            counts["files_kept"] += 1
        else:
            counts["files_dropped"] += 1
    if counts["tables"] == 0 and counts["files_kept"] == 0:
        raise ValidationError(
            f"a {fraction:.4%} sample keeps none of the files",
            "pass a larger --fraction or another --seed",
        )
    return counts


def _filtered(batches: Iterator[Any], fraction: float, seed: int) -> Iterator[tuple[Any, int]]:
    """Each batch reduced to its sampled rows, with its row count before sampling."""
    import pyarrow as pa

    start = 0
    for batch in batches:
        mask = row_keys(start, batch.num_rows, seed) < fraction
        start += batch.num_rows
        yield batch.filter(pa.array(mask)), mask.size


def _sample_csv(
    src: Path, dst: Path, delimiter: str, fraction: float, seed: int
) -> tuple[int, int]:
    import pyarrow as pa
    from pyarrow import csv

    parse = csv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    with csv.open_csv(src, parse_options=parse) as probe:
        names = probe.schema.names

    # Every cell as text: values are written back as they were read, not reformatted.
    convert = csv.ConvertOptions(column_types={n: pa.string() for n in names})
    seen = kept = 0
    # pyarrow quotes every header name; the header is written as the rows are: quoted
    # only where needed.
    header = io.StringIO()
    stdcsv.writer(header, delimiter=delimiter, lineterminator="\n").writerow(names)
    options = csv.WriteOptions(delimiter=delimiter, quoting_style="needed", include_header=False)
    with (
        csv.open_csv(src, parse_options=parse, convert_options=convert) as reader,
        open(dst, "wb") as fh,  # noqa: PTH123
    ):
        fh.write(header.getvalue().encode())
        with csv.CSVWriter(fh, reader.schema, write_options=options) as writer:
            for batch, rows in _filtered(iter(reader), fraction, seed):
                writer.write_batch(batch)
                seen += rows
                kept += batch.num_rows
    return seen, kept


def _sample_parquet(src: Path, dst: Path, fraction: float, seed: int) -> tuple[int, int]:
    import pyarrow.parquet as pq

    seen = kept = 0
    table = pq.ParquetFile(src)
    with pq.ParquetWriter(dst, table.schema_arrow) as writer:
        for batch, rows in _filtered(table.iter_batches(batch_size=BATCH_ROWS), fraction, seed):
            writer.write_batch(batch)
            seen += rows
            kept += batch.num_rows
    return seen, kept


def sample_dataset(
    store: DatasetStore,
    name: str,
    fraction: float,
    *,
    seed: int = 0,
    version: str | None = None,
    new_name: str | None = None,
) -> tuple[AddResult, dict[str, int]]:
    """Add a ``fraction`` sample of ``name`` (``version``: default pin, else latest) as
    ``new_name`` (default ``NAME-sample``). Returns the add's result and the counts."""
    if not 0 < fraction <= 1:
        parse_fraction(str(fraction))  # raises the usual error
    target = new_name or f"{name}-sample"
    layout.dataset(store.project, target)  # validates the name before any download
    if target == name:
        raise ValidationError("a sample cannot replace its dataset", "pass another --as NAME")
    handle = store.get(name, version)
    assert handle.local_path is not None  # downloaded
    sampled_from = {"dataset": name, "version": handle.version, "fraction": fraction, "seed": seed}
    with tempfile.TemporaryDirectory(prefix="aletheia-sample-") as tmp:
        counts = sample_tree(handle.local_path, Path(tmp), fraction, seed)
        result = store.add(
            target,
            Path(tmp),
            desc=f"{fraction:.4g} sample of {name} {handle.version} (seed {seed})",
            source=f"aletheia sample of {store.project}/{name} {handle.version}",
            lock=False,
            derived={"sampled_from": sampled_from},
        )
    return result, counts


def samples_of(store: DatasetStore, name: str) -> list[dict[str, Any]]:
    """``{dataset, version, fraction, seed}`` of every sample made of ``name``, by name.

    ``version`` is the sampled version of ``name``; the sample's own latest version
    is ``latest_version``.
    """
    out = []
    for doc in store.list_datasets():
        origin = doc.get("sampled_from")
        if isinstance(origin, dict) and origin.get("dataset") == name:
            out.append(
                {
                    "dataset": doc.get("name"),
                    "latest_version": doc.get("latest_version"),
                    "version": origin.get("version"),
                    "fraction": origin.get("fraction"),
                    "seed": origin.get("seed"),
                }
            )
    return out
