"""Profiles of a table's parts, merged, against the profile of the whole table.

The parts are real files (CSV and Parquet) profiled by the real profiler; the
whole is the same rows in one file. Exact statistics must be equal, quantiles
within the rank error the merged profile states, distinct counts within
HyperLogLog's bound, top-value counts within their stated undercount.
"""

from __future__ import annotations

import base64
import itertools
import json
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from aletheia.stats.columnstats import ProfileOptions
from aletheia.stats.formats import ProfileMergeError, detect_format
from aletheia.stats.merge import merge_profiles
from aletheia.stats.profiling import profile, profile_batches
from aletheia.stats.sketches import HLL_PRECISION

ROWS = 40_000
PARTS = 5
# Small sketches, so that 40,000 rows are far past every exact regime.
OPTS = ProfileOptions(
    reservoir=256, counter_capacity=64, distinct_exact_max=1000, distinct_budget=5000
)
EXACT_FIELDS = (
    "count",
    "missing",
    "min",
    "max",
    "zeros",
    "non_finite",
    "true",
    "false",
    "min_length",
    "max_length",
    "empty",
)


def _table(seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    score = rng.lognormal(0, 1, ROWS)
    score[rng.random(ROWS) < 0.05] = np.nan  # missing in CSV, NaN -> null below
    words = np.array([f"w{i}" for i in range(400)])
    return pa.table(
        {
            "id": np.arange(ROWS) * 7919 % 1_000_003,  # all distinct
            "score": pa.array(score, mask=np.isnan(score)),
            "level": rng.integers(-3, 4, ROWS),
            "word": words[np.minimum(rng.zipf(1.3, ROWS), 400) - 1],
            "flag": rng.random(ROWS) < 0.3,
            "city": np.array(["paris", "lima", "rome", "oslo"])[rng.integers(0, 4, ROWS)],
        }
    )


def _write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)
    return path


def _profile_file(path: Path) -> dict[str, Any]:
    head = path.read_bytes()[:8]
    detected = detect_format(path.name, None, head)
    result = profile(lambda: path.open("rb"), detected, OPTS).to_dict()
    # What the function stores is JSON: merge what a reader gets back.
    return dict(json.loads(json.dumps(result)))


def _by_name(profile_dict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in profile_dict["stats"]}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_merged_parts_equal_the_whole_within_the_stated_bounds(tmp_path: Path, suffix: str) -> None:
    table = _table()
    bounds = np.linspace(0, ROWS, PARTS + 1).astype(int)
    parts = [
        _profile_file(_write(table.slice(a, b - a), tmp_path / f"part-{i}{suffix}"))
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]
    whole = _by_name(_profile_file(_write(table, tmp_path / f"whole{suffix}")))

    merged_profile = merge_profiles(parts, OPTS)
    merged = _by_name(merged_profile)

    assert merged_profile["rows"] == ROWS and merged_profile["parts"] == PARTS
    assert list(merged) == list(whole)
    for name, truth in whole.items():
        got = merged[name]
        assert got["type"] == truth["type"] and got["kind"] == truth["kind"]
        for key in EXACT_FIELDS:
            assert got.get(key) == truth.get(key), (name, key)
        for key in ("mean", "std", "mean_length"):
            if truth.get(key) is None:
                assert got.get(key) is None, (name, key)
            else:
                assert got.get(key) == pytest.approx(truth[key], rel=1e-9), (name, key)
        _distinct_within_bound(table, name, got)
    _quantiles_within_bound(table.column("score"), merged["score"])
    _quantiles_within_bound(table.column("level"), merged["level"])
    _top_within_bound(table.column("word"), merged["word"])
    assert merged["flag"]["top_exact"] and merged["city"]["top_exact"]
    assert merged["city"]["domain"] == ["lima", "oslo", "paris", "rome"]
    present = ROWS - table.column("score").null_count
    assert sum(merged["score"]["histogram"]["counts"]) == present


def _distinct_within_bound(table: pa.Table, name: str, column: dict[str, Any]) -> None:
    truth = len(table.column(name).drop_null().unique())
    if column["distinct_exact"]:
        assert column["distinct"] == truth, name
        assert column["error"]["distinct_relative"] == 0
        return
    # The stated error is one standard error: three of them hold with near certainty.
    bound = 3 * column["error"]["distinct_relative"] * truth
    assert column["error"]["distinct_relative"] > 0
    assert abs(column["distinct"] - truth) <= bound, (name, column["distinct"], truth)


def _quantiles_within_bound(values: pa.ChunkedArray, column: dict[str, Any]) -> None:
    data = np.sort(values.drop_null().to_numpy().astype(np.float64))
    eps = column["error"]["quantile_rank"]
    assert not column["quantiles_exact"] and 0 < eps < 0.05
    for key, value in column["quantiles"].items():
        q = int(key[1:]) / 100
        # Every rank the reported value can have among the true values (ties span a range).
        low = np.searchsorted(data, value, side="left") / data.size
        high = np.searchsorted(data, value, side="right") / data.size
        assert low - eps - 1 / data.size <= q <= high + eps + 1 / data.size, (key, value)


def _top_within_bound(values: pa.ChunkedArray, column: dict[str, Any]) -> None:
    counts = {str(v["values"]): int(v["counts"]) for v in values.value_counts().to_pylist()}
    slack = column["error"]["top_count"]
    assert not column["top_exact"] and slack > 0
    for entry in column["top"]:
        true = counts[entry["value"]]
        assert true - slack <= entry["count"] <= true, entry
    # The most frequent values are found, in order.
    heaviest = sorted(counts, key=lambda v: -counts[v])[:3]
    assert [e["value"] for e in column["top"][:3]] == heaviest


def test_a_merged_profile_merges_again_to_the_same_exact_statistics(tmp_path: Path) -> None:
    table = _table(seed=3)
    thirds = [table.slice(0, 10_000), table.slice(10_000, 15_000), table.slice(25_000)]
    parts = [profile_batches(t.to_batches(max_chunksize=4096), OPTS).to_dict() for t in thirds]

    flat = _by_name(merge_profiles(parts, OPTS))
    nested = _by_name(merge_profiles([merge_profiles(parts[:2], OPTS), parts[2]], OPTS))

    for name, column in flat.items():
        for key in (*EXACT_FIELDS, "distinct"):
            assert nested[name].get(key) == column.get(key), (name, key)
        if column.get("mean") is not None:
            assert nested[name]["mean"] == pytest.approx(column["mean"], rel=1e-12)


def test_a_profile_merged_alone_keeps_its_exact_statistics() -> None:
    table = _table(seed=5).slice(0, 3000)
    alone = profile_batches(table.to_batches(), OPTS).to_dict()
    again = _by_name(merge_profiles([alone], OPTS))
    for name, column in _by_name(alone).items():
        for key in (*EXACT_FIELDS, "distinct", "distinct_exact", "top"):
            assert again[name].get(key) == column.get(key), (name, key)


def test_profiles_of_different_tables_or_without_sketches_are_refused() -> None:
    a = profile_batches(pa.table({"x": [1, 2, 3]}).to_batches(), OPTS).to_dict()
    b = profile_batches(pa.table({"y": [1, 2, 3]}).to_batches(), OPTS).to_dict()
    with pytest.raises(ProfileMergeError, match="group them by schema") as exc:
        merge_profiles([a, b])
    assert exc.value.hint
    old = {k: v for k, v in a.items() if k != "sketches"}
    with pytest.raises(ProfileMergeError, match="no sketches") as exc:
        merge_profiles([a, old])
    assert "profile the file again" in (exc.value.hint or "")
    with pytest.raises(ProfileMergeError):
        merge_profiles([])


def test_an_integer_part_merges_with_a_float_part_of_the_same_column() -> None:
    ints = profile_batches(pa.table({"x": [1, 2, 3]}).to_batches(), OPTS).to_dict()
    floats = profile_batches(pa.table({"x": [1.5, 2.5]}).to_batches(), OPTS).to_dict()
    merged = _by_name(merge_profiles([ints, floats], OPTS))["x"]
    assert merged["type"] == "double" and merged["count"] == 5
    assert merged["min"] == 1 and merged["max"] == 3
    assert merged["mean"] == pytest.approx(np.mean([1, 2, 3, 1.5, 2.5]))


def test_profile_batches_of_no_batches_uses_the_schema() -> None:
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    empty = profile_batches([], OPTS, format="spark", schema=schema).to_dict()
    assert empty["rows"] == 0 and empty["format"] == "spark"
    assert [c["name"] for c in empty["stats"]] == ["a", "b"]
    assert len(empty["sketches"]) == 2


def test_decimal_parts_merge_their_range_as_numbers_not_text() -> None:
    # Stored profiles hold decimals as text, where "10.25" < "9.75".
    kind = pa.decimal128(6, 2)
    low = pa.table({"d": pa.array([Decimal("1.50"), Decimal("10.25")], kind)})
    high = pa.table({"d": pa.array([Decimal("9.75"), Decimal("2.00")], kind)})
    parts = [
        json.loads(json.dumps(profile_batches(t.to_batches(), OPTS).to_dict())) for t in (low, high)
    ]
    merged = _by_name(merge_profiles(parts, OPTS))["d"]
    assert (merged["min"], merged["max"]) == (1.5, 10.25)
    assert sum(merged["histogram"]["counts"]) == 4


def _as_format_1(profile_dict: dict[str, Any], deflate: bool) -> dict[str, Any]:
    """The profile as sketch format 1 stored it: registers as base64 of precision, codec, bytes."""
    out = json.loads(json.dumps(profile_dict))
    for sketch in out["sketches"]:
        sketch["version"] = 1
        text = sketch.pop("hll_text", None)
        if text is not None:
            raw = (np.frombuffer(text.encode("ascii"), np.uint8) - 35).astype(np.uint8).tobytes()
            header = bytes([HLL_PRECISION, 1 if deflate else 0])
            body = zlib.compress(raw, 1) if deflate else raw
            sketch["hll"] = base64.b64encode(header + body).decode("ascii")
    return out


def test_profiles_stored_in_the_earlier_sketch_format_still_merge() -> None:
    table = _table(seed=9)
    parts = [
        json.loads(json.dumps(profile_batches(t.to_batches(max_chunksize=4096), OPTS).to_dict()))
        for t in (table.slice(0, 15_000), table.slice(15_000, 10_000), table.slice(25_000))
    ]
    assert any("hll_text" in s for s in parts[0]["sketches"])  # past the stored hashes
    old = [_as_format_1(p, deflate=i % 2 == 0) for i, p in enumerate(parts)]

    current = merge_profiles(parts, OPTS)
    from_old = merge_profiles(old, OPTS)
    mixed = merge_profiles([old[0], parts[1], old[2]], OPTS)

    # KLL's compactions are random: its quantiles agree within its bound, not to the bit.
    assert _without_kll(from_old) == _without_kll(current) == _without_kll(mixed)
    assert [s.get("hll_text") for s in from_old["sketches"]] == [
        s.get("hll_text") for s in current["sketches"]
    ]  # the same registers, written in the current format
    broken = _as_format_1(parts[0], deflate=False)
    sketch = next(s for s in broken["sketches"] if "hll" in s)
    sketch["hll"] = sketch["hll"][:-8]  # registers cut short
    with pytest.raises(ProfileMergeError, match="cannot read"):
        merge_profiles([broken, parts[1]], OPTS)


def _without_kll(profile_dict: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in column.items() if k not in ("quantiles", "histogram")}
        for column in profile_dict["stats"]
    ]
