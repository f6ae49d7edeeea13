"""Deterministic row splits of tabular files (the 70/30 train/test split of a dataset).

Row ``i`` of a file goes to part ``k`` when a keyed hash of ``(seed, path,
i)`` falls into part ``k``'s slice of [0, 1): the same seed gives the same
split on every machine, each file is split independently, and files are
streamed, so any size fits. Non-tabular files are copied into the first
part unchanged (listed in the result).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from aletheia.errors import ValidationError
from aletheia.stats import csvshape
from aletheia.stats.formats import Detected, UnsupportedFormatError, detect_format

_BLOCK = 1 << 20
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def parse_ratios(text: str) -> list[float]:
    """``"0.7,0.3"`` → ``[0.7, 0.3]``; they must be positive and sum to 1."""
    try:
        ratios = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ValidationError(f"ratios {text!r} are not numbers", "write e.g. 0.7,0.3") from exc
    if len(ratios) < 2 or any(r <= 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValidationError(
            f"ratios {text!r} must be two or more positive numbers summing to 1",
            "write e.g. 0.7,0.3",
        )
    return ratios


def assign(seed: int, key: str, start: int, count: int, ratios: Sequence[float]) -> np.ndarray:
    """The part index of rows ``start .. start+count`` of the file named ``key``."""
    salt = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little")
    x = (np.arange(start, start + count, dtype=np.uint64) + np.uint64(salt)) & _MASK
    # splitmix64: a fast, well-mixed 64-bit hash of the row number.
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        x = x ^ (x >> np.uint64(31))
    unit = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    edges = np.cumsum(ratios)[:-1]
    return np.searchsorted(edges, unit, side="right")


@dataclass
class SplitResult:
    """Rows written to each part, per file, and files copied whole."""

    rows: dict[str, list[int]] = field(default_factory=dict)
    copied: list[str] = field(default_factory=list)

    def totals(self) -> list[int]:
        """Rows per part over every file."""
        parts = len(next(iter(self.rows.values()), []))
        return [sum(r[k] for r in self.rows.values()) for k in range(parts)]


def split_tree(
    source: Path, files: Sequence[str], outputs: Sequence[Path], ratios: Sequence[float], seed: int
) -> SplitResult:
    """Split each file ``source/relpath`` into ``outputs[k]/relpath``."""
    result = SplitResult()
    for relpath in files:
        src = source / relpath
        with src.open("rb") as fh:
            head = fh.read(8)
        try:
            detected = detect_format(relpath, None, head)
        except UnsupportedFormatError:
            target = outputs[0] / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            result.copied.append(relpath)
            continue
        targets = [out / relpath for out in outputs]
        result.rows[relpath] = split_file(src, detected, targets, ratios, seed, key=relpath)
    return result


def split_file(
    src: Path,
    detected: Detected,
    targets: Sequence[Path],
    ratios: Sequence[float],
    seed: int,
    *,
    key: str,
) -> list[int]:
    """Stream ``src`` into one file per part, in the same format; returns rows per part."""
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    counts = [0] * len(targets)
    writers = [_Writer(t, detected) for t in targets]
    start = 0
    try:
        for batch in _batches(src, detected):
            parts = assign(seed, key, start, batch.num_rows, ratios)
            start += batch.num_rows
            for k, writer in enumerate(writers):
                chosen = np.nonzero(parts == k)[0]
                writer.write(batch.take(pa.array(chosen)), batch.schema)
                counts[k] += int(chosen.size)
    finally:
        for writer in writers:
            writer.close()
    return counts


def _open(src: Path, detected: Detected) -> IO[bytes]:
    fh = src.open("rb")
    return gzip.GzipFile(fileobj=fh, mode="rb") if detected.gzip else fh  # type: ignore[return-value]


def _batches(src: Path, detected: Detected) -> Iterator[pa.RecordBatch]:
    if detected.format == "parquet":
        yield from pq.ParquetFile(src).iter_batches()
        return
    with _open(src, detected) as stream:
        if detected.format == "jsonl":
            reader: Any = pa_json.open_json(stream, read_options=pa_json.ReadOptions(_BLOCK))
        else:
            delimiter = csvshape.delimiter_of(detected.format)
            # Strings throughout: the parts keep the source's text exactly.
            header = _header(src, detected, delimiter)
            reader = pa_csv.open_csv(
                stream,
                read_options=pa_csv.ReadOptions(block_size=_BLOCK),
                parse_options=pa_csv.ParseOptions(delimiter=delimiter),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
                ),
            )
        yield from reader


def _header(src: Path, detected: Detected, delimiter: str) -> list[str]:
    with _open(src, detected) as stream:
        return list(
            pa_csv.open_csv(
                stream,
                read_options=pa_csv.ReadOptions(block_size=_BLOCK),
                parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            ).schema.names
        )


class _Writer:
    """Writes record batches to one part file in the source's format (lazily opened)."""

    def __init__(self, path: Path, detected: Detected) -> None:
        self.path = path
        self.detected = detected
        self.sink: Any = None
        self.writer: Any = None

    def write(self, batch: pa.RecordBatch, schema: pa.Schema) -> None:
        if self.sink is None:
            raw = self.path.open("wb")
            self.sink = (
                gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if self.detected.gzip else raw
            )
            self.raw = raw
            fmt = self.detected.format
            if fmt == "parquet":
                self.writer = pq.ParquetWriter(self.sink, schema)
            elif fmt in ("csv", "tsv"):
                options = pa_csv.WriteOptions(delimiter=csvshape.delimiter_of(fmt))
                self.writer = pa_csv.CSVWriter(self.sink, schema, write_options=options)
        if batch.num_rows == 0:
            return
        if self.writer is not None:
            self.writer.write_batch(batch)
        else:
            for row in batch.to_pylist():
                self.sink.write(json.dumps(row, default=str).encode() + b"\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.sink is not None:
            self.sink.close()
            if self.sink is not self.raw:
                self.raw.close()
