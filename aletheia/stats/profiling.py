"""Schema and statistics of a tabular data file, streamed in bounded memory.

The file is read in blocks (pyarrow's streaming CSV and JSON readers,
Parquet row batches); every column keeps a few fixed-size sketches
(:mod:`aletheia.stats.sketches`), so memory depends on the block size and the
number of columns, never on the number of rows. Distinct counts,
quantiles, histograms and top values are exact while they fit their
sketches and approximate beyond (the profile says which: ``distinct_exact``,
``top_exact``, ``quantiles_exact``, and each column's ``error`` gives the
bounds). The sketches themselves are in the profile too (``sketches``, one
per profiled column), so profiles of parts merge into the profile of the
whole (:mod:`aletheia.stats.merge`); :func:`profile_batches` profiles record
batches from any source (a Spark partition, say) into the same format.

What the reader had to interpret is said in ``notes`` (a header without the
row-name column, title lines, a JSON array read as JSON Lines); what it had
to skip or coerce is in ``warnings``. A file most of whose rows cannot be
read fails rather than reporting statistics of what little was left.

Bad input never raises anything but :class:`ProfileError`, whose message
is the reason recorded on the file's document.

The work is split by concern: :mod:`aletheia.stats.formats` says what a
file is, :mod:`aletheia.stats.readers` turns it into record batches (and
restarts with a better plan when a later block contradicts the first),
:mod:`aletheia.stats.columnstats` aggregates each column; this module runs
them and assembles the :class:`Profile`.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from aletheia.stats import csvshape, jsonarray, parallel
from aletheia.stats.columnstats import ProfileOptions
from aletheia.stats.formats import Detected, Opener, ProfileError, detect_format
from aletheia.stats.readers import BatchReader, ReadPlan, Restart, head, prefetched, replan
from aletheia.stats.tally import Tally

_MAX_RESTARTS = 24
#: Blocks the reader's thread parses ahead: a group of blocks is fed at once, and the
#: reader keeps parsing the next group meanwhile (a few MiB each).
READ_AHEAD = 4


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
    #: One JSON-safe sketch state per profiled column (:class:`ColumnSketch`).
    sketches: list[dict[str, Any]] = field(default_factory=list)
    #: Parts of the file read side by side (:mod:`aletheia.stats.parallel`); not stored.
    read_parts: int = 1

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
        """The full profile (every profiled column), with its mergeable sketches."""
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
            "sketches": self.sketches,
        }

    def sample_jsonl(self) -> bytes:
        """The row sample as JSON Lines."""
        return b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in self.sample)


def profile_batches(
    batches: Iterable[pa.RecordBatch],
    options: ProfileOptions | None = None,
    *,
    format: str = "arrow",
    schema: pa.Schema | None = None,
) -> Profile:
    """The profile of record batches from any source, in the format files get.

    ``schema`` is needed only when there may be no batches at all; batches
    whose schema differs from the first one's are cast to it (an
    :class:`pa.ArrowInvalid` when they cannot be). ``format`` is recorded as
    the profile's format.
    """
    opts = options or ProfileOptions()
    tally = Tally(opts, np.random.default_rng(opts.seed))
    tally.run(iter(batches), schema)
    warnings = ["no rows"] if tally.rows == 0 else []
    return _assemble(tally, format, False, warnings, [])


def profile(
    open_stream: Opener, detected: Detected, options: ProfileOptions | None = None
) -> Profile:
    """Profile the file ``open_stream()`` yields (it may be called again to restart).

    Restarts happen when a later block contradicts the types inferred from
    the first one (an int column meeting ``1.5``), when text is not UTF-8,
    or when a row does not fit in a block; each is noted in ``warnings``.
    """
    opts = options or ProfileOptions()
    plan = ReadPlan(block_size=opts.block_size)
    first = b""
    if detected.format in ("csv", "tsv"):
        first, complete = head(open_stream, detected)
        shape, encoding = csvshape.sniff_file(first, detected.format, complete)
        plan = replace(plan, shape=shape, encoding=encoding)
    parts = parallel.split(open_stream, detected, opts, plan.shape, first, plan.encoding)
    for _ in range(_MAX_RESTARTS):
        try:
            if len(parts) > 1:
                outcome = parallel.read_parts(open_stream, detected, opts, plan, parts)
                if outcome is not None:
                    return _finish(outcome, detected, plan)
                parts = parts[:1]  # void (a value spanning lines, say): one pass decides
            return _Run(open_stream, detected, opts, plan).execute()
        except Restart as restart:
            plan = restart.plan
        except pa.ArrowInvalid as exc:
            plan = replan(plan, detected, str(exc))
    raise ProfileError(f"gave up after {_MAX_RESTARTS} restarts: {'; '.join(plan.notes)}")


class _Run:
    """One pass over the file under one plan: read its batches, aggregate every column."""

    def __init__(self, opener: Opener, detected: Detected, opts: ProfileOptions, plan: ReadPlan):
        self.detected = detected
        self.opts = opts
        self.plan = plan
        self.reader = BatchReader(opener, detected, plan, batch_rows=opts.batch_rows)
        self.rng = np.random.default_rng(opts.seed)

    def execute(self) -> Profile:
        try:
            with contextlib.closing(prefetched(self.reader.batches(), READ_AHEAD)) as batches:
                return self._profile_batches(batches)
        except (EOFError, gzip.BadGzipFile) as exc:
            raise ProfileError(f"corrupt gzip stream: {exc}") from exc
        except jsonarray.NotRecordsError as exc:
            raise ProfileError(exc.message, exc.hint) from exc
        finally:
            self.reader.close()

    def _profile_batches(self, batches: Iterator[pa.RecordBatch]) -> Profile:
        tally = Tally(self.opts, self.rng)
        # The reader knows the schema of a file without rows only after reading it.
        tally.run(batches, lambda: self.reader.schema)
        reader = self.reader
        outcome = parallel.Outcome(tally, reader.ragged, reader.notes, reader.schema, parts=1)
        return _finish(outcome, self.detected, self.plan)


def _finish(outcome: parallel.Outcome, detected: Detected, plan: ReadPlan) -> Profile:
    """The profile of a read: refused when most rows did not fit the header."""
    warnings = list(plan.notes)
    ragged, rows = outcome.ragged, outcome.tally.rows
    if ragged > rows:
        # Statistics of the few rows that fit would describe a file that does not exist.
        assert outcome.schema is not None
        raise ProfileError(
            f"{ragged} of {ragged + rows} rows have a different number of fields "
            f"than the header ({len(outcome.schema)} fields)",
            "check the delimiter and that the first line is the header",
        )
    if ragged:
        warnings.append(f"{ragged} row(s) with the wrong number of fields were skipped")
    if rows == 0:
        warnings.append("the file has a header but no rows")
    result = _assemble(outcome.tally, detected.format, detected.gzip, warnings, outcome.notes)
    result.read_parts = outcome.parts
    return result


def _assemble(tally: Tally, fmt: str, gz: bool, warnings: list[str], notes: list[str]) -> Profile:
    """The profile of what ``tally`` aggregated."""
    assert tally.schema is not None
    if len(tally.schema) > len(tally.columns):
        warnings.append(
            f"only the first {len(tally.columns)} of {len(tally.schema)} columns profiled"
        )
    return Profile(
        format=fmt,
        gzip=gz,
        rows=tally.rows,
        columns_total=len(tally.schema),
        columns=[c.result(tally.opts) for c in tally.columns],
        warnings=warnings,
        sample=tally.sample.rows(),
        notes=notes,
        sketches=[c.to_sketch() for c in tally.columns],
    )


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
