"""Validation of a new version of a file against the previous one (no emulator needed)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from aletheia.stats import drift, formats, profiling


def _profile(table: pa.Table) -> dict[str, Any]:
    sink = io.BytesIO()
    pa_csv.write_csv(table, sink)
    opener = formats.open_bytes(sink.getvalue())
    return profiling.profile(opener, formats.Detected("csv")).to_dict()


def _table(seed: int, n: int = 3000, shift: float = 0.0, **extra: Any) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns = {
        "age": rng.normal(40 + shift, 8, n),
        "country": np.array(["fr", "de", "it"])[rng.integers(0, 3, n)],
        "clicks": rng.poisson(3, n),
    }
    return pa.table({**columns, **extra})


def _kinds(result: dict[str, Any]) -> set[tuple[str, str]]:
    return {(a["kind"], a["column"]) for a in result["anomalies"]}


def test_unchanged_version_has_no_anomalies() -> None:
    result = drift.compare(_profile(_table(1)), _profile(_table(2)))

    assert result["ok"] is True, result["anomalies"]
    assert set(result["drift"]) == {"age", "country", "clicks"}
    assert all(not d["drifted"] for d in result["drift"].values())


def test_shifted_column_and_new_column_are_flagged() -> None:
    v2 = _table(2, shift=6.0, score=np.arange(3000) / 10)

    result = drift.compare(_profile(_table(1)), _profile(v2))

    assert result["ok"] is False
    assert _kinds(result) == {("new_column", "score"), ("drift", "age")}
    assert result["drift"]["age"]["metric"] == "ks"
    assert result["drift"]["age"]["value"] > 0.2


def test_missing_column_type_change_nulls_and_domain() -> None:
    rng = np.random.default_rng(3)
    ages = [None if i % 50 == 0 else float(x) for i, x in enumerate(rng.normal(40, 8, 3000))]
    v1 = _table(1, gone=np.ones(3000))  # clicks: integers, country: fr/de/it
    v2 = pa.table(
        {
            "age": pa.array(ages),
            "country": np.array(["fr", "de", "it", "es"])[rng.integers(0, 4, 3000)],
            "clicks": rng.normal(3, 1, 3000),
        }
    )

    kinds = _kinds(drift.compare(_profile(v1), _profile(v2)))

    assert ("missing_column", "gone") in kinds
    assert ("type_change", "clicks") in kinds
    assert ("new_nulls", "age") in kinds
    assert ("out_of_domain", "country") in kinds
    assert ("drift", "country") in kinds  # a quarter of the rows moved to a new value


def test_thresholds_are_configurable() -> None:
    v1, v2 = _profile(_table(1)), _profile(_table(2, shift=1.0))
    loose = drift.compare(v1, v2, drift.Thresholds(numeric_ks=0.5))
    strict = drift.compare(v1, v2, drift.Thresholds(numeric_ks=0.01))

    assert loose["ok"] is True
    assert ("drift", "age") in _kinds(strict)


def test_jensen_shannon_bounds() -> None:
    assert drift.jensen_shannon({"a": 1.0}, {"a": 1.0}) == 0.0
    assert abs(drift.jensen_shannon({"a": 1.0}, {"b": 1.0}) - 1.0) < 1e-9
