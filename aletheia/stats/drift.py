"""Validation of a file against the previous version of the same file (TFDV-style anomalies).

Pure functions over two profiles (a ``Files`` document or
:meth:`aletheia.stats.profiling.Profile.to_dict`): columns added or gone, type
changes, nulls where there were none, values outside a small known domain,
and distribution drift per column, Jensen-Shannon distance for categorical
columns and a Kolmogorov-Smirnov-like L-infinity distance between the
quantile CDFs for numeric ones. :mod:`aletheia.stats.versioncheck` applies them to
every file of a dataset version that has a counterpart in its parent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Thresholds:
    """When a distance counts as drift (both distances lie in [0, 1])."""

    numeric_ks: float = 0.1
    categorical_js: float = 0.1


def columns_of(profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{column name: stats}`` from a Files document or a full profile."""
    stats = profile.get("stats") or {}
    listed = stats.get("columns", []) if isinstance(stats, dict) else stats
    return {c["name"]: c for c in listed}


def compare(
    baseline: dict[str, Any], current: dict[str, Any], thresholds: Thresholds | None = None
) -> dict[str, Any]:
    """Anomalies and per-column drift of ``current`` against ``baseline``."""
    limits = thresholds or Thresholds()
    old, new = columns_of(baseline), columns_of(current)
    anomalies: list[dict[str, Any]] = []
    anomalies += [
        _anomaly("new_column", n, "not in the previous version") for n in new if n not in old
    ]
    anomalies += [
        _anomaly("missing_column", n, "was in the previous version") for n in old if n not in new
    ]
    drift: dict[str, dict[str, Any]] = {}
    for name in (n for n in new if n in old):
        anomalies += _column_anomalies(name, old[name], new[name])
        measured = _drift(old[name], new[name], limits)
        if measured is not None:
            drift[name] = measured
            if measured["drifted"]:
                detail = f"{measured['metric']} {measured['value']:.3f} > {measured['threshold']}"
                anomalies.append(_anomaly("drift", name, detail))
    return {
        "ok": not anomalies,
        "anomalies": anomalies,
        "drift": drift,
        "thresholds": asdict(limits),
    }


def _anomaly(kind: str, column: str, detail: str) -> dict[str, Any]:
    return {"kind": kind, "column": column, "detail": detail}


def _column_anomalies(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    if old.get("type") != new.get("type"):
        out.append(_anomaly("type_change", name, f"{old.get('type')} -> {new.get('type')}"))
    if not old.get("missing") and new.get("missing"):
        out.append(_anomaly("new_nulls", name, f"{new['missing']} missing, none before"))
    domain = old.get("domain")
    if domain is not None:
        seen = new.get("domain") or [t["value"] for t in new.get("top", [])]
        outside = sorted({str(v) for v in seen} - {str(v) for v in domain})
        if outside:
            out.append(_anomaly("out_of_domain", name, ", ".join(outside[:10])))
    return out


def _drift(old: dict[str, Any], new: dict[str, Any], limits: Thresholds) -> dict[str, Any] | None:
    if (
        old.get("kind") == new.get("kind") == "numeric"
        and old.get("quantiles")
        and new.get("quantiles")
    ):
        value = quantile_ks(old["quantiles"], new["quantiles"])
        metric, threshold = "ks", limits.numeric_ks
    elif old.get("top") and new.get("top"):
        value = jensen_shannon(_distribution(old), _distribution(new))
        metric, threshold = "jensen_shannon", limits.categorical_js
    else:
        return None
    return {
        "metric": metric,
        "value": round(value, 6),
        "threshold": threshold,
        "drifted": value > threshold,
    }


def quantile_ks(old: dict[str, float], new: dict[str, float]) -> float:
    """Largest gap between two CDFs known by their quantiles (``{"p50": x, ...}``)."""
    levels_old, values_old = _cdf(old)
    levels_new, values_new = _cdf(new)
    points = np.union1d(values_old, values_new)
    cdf_old = np.interp(points, values_old, levels_old, left=0.0, right=1.0)
    cdf_new = np.interp(points, values_new, levels_new, left=0.0, right=1.0)
    return float(np.max(np.abs(cdf_old - cdf_new)))


def _cdf(quantiles: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    pairs = sorted((int(k[1:]) / 100, float(v)) for k, v in quantiles.items())
    levels = np.array([p for p, _ in pairs])
    values = np.maximum.accumulate(np.array([v for _, v in pairs]))
    return levels, values


def _distribution(column: dict[str, Any]) -> dict[str, float]:
    present = max(int(column.get("count", 0)) - int(column.get("missing", 0)), 1)
    dist = {str(t["value"]): t["count"] / present for t in column.get("top", [])}
    rest = 1.0 - sum(dist.values())
    if rest > 1e-9:
        dist["\0other"] = rest
    return dist


def jensen_shannon(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]) between two discrete distributions."""
    keys = sorted(set(p) | set(q))
    a = np.array([p.get(k, 0.0) for k in keys])
    b = np.array([q.get(k, 0.0) for k in keys])
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return math.sqrt(max((kl(a) + kl(b)) / 2, 0.0))
