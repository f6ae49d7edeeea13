"""Runs as pandas DataFrames, and the cross-validation table (pandas is optional).

``runs_frame`` puts one run per row, params and final metrics as columns,
named as MLflow's ``search_runs`` frames are (``params.lr``,
``metrics.val/acc``; hyper-params as ``hyper_params.<k>``). ``fold_table``
is the table people build by hand after a k-fold sweep: one row per
hyper-parameter set (every param and hyper-param column and the model,
never the fold), with how many runs it averages and the mean and standard
deviation (pandas' sample ``std``; NaN for a single fold) of each final
metric.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from aletheia.errors import AletheiaError

if TYPE_CHECKING:
    import pandas

#: Columns every frame has, before params and metrics.
BASE_COLUMNS = ("experiment", "run", "status", "fold", "model", "started_at", "ended_at")


class RunLike(Protocol):
    """What a frame reads of a run (a :class:`~aletheia.tracking.readapi.RunView`)."""

    @property
    def experiment(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def fold(self) -> int | None: ...

    @property
    def model(self) -> str | None: ...

    @property
    def started_at(self) -> dt.datetime | None: ...

    @property
    def ended_at(self) -> dt.datetime | None: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    @property
    def hyper_params(self) -> Mapping[str, Any]: ...

    @property
    def metrics(self) -> Mapping[str, float | None]: ...


def require_pandas() -> Any:
    """The pandas module, or an :class:`AletheiaError` saying how to install it."""
    try:
        import pandas
    except ImportError as exc:
        raise AletheiaError(
            "run frames need pandas, which is not installed",
            "pip install pandas (or list the runs with exper.runs())",
        ) from exc
    return pandas


def _cell(value: Any) -> Any:
    """A param value as a frame cell: maps and lists as JSON text (hashable, groupable)."""
    if isinstance(value, Mapping | list | tuple):
        plain = json.loads(json.dumps(value, default=_listify))
        return json.dumps(plain, sort_keys=True)
    return value


def _listify(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def runs_frame(runs: Iterable[RunLike]) -> pandas.DataFrame:
    """One row per run: :data:`BASE_COLUMNS`, then ``params.*``, ``hyper_params.*``,
    ``metrics.*`` (last values), each group sorted by name."""
    pd = require_pandas()
    rows = []
    groups: dict[str, set[str]] = {"params": set(), "hyper_params": set(), "metrics": set()}
    for run in runs:
        row: dict[str, Any] = {
            "experiment": run.experiment,
            "run": run.id,
            "status": run.status,
            "fold": run.fold,
            "model": run.model,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
        }
        for group, values in (
            ("params", run.params),
            ("hyper_params", run.hyper_params),
            ("metrics", run.metrics),
        ):
            for key, value in values.items():
                groups[group].add(key)
                row[f"{group}.{key}"] = _cell(value)
        rows.append(row)
    columns = list(BASE_COLUMNS)
    for group in ("params", "hyper_params", "metrics"):
        columns += [f"{group}.{k}" for k in sorted(groups[group])]
    frame = pd.DataFrame(rows, columns=columns)
    metric_columns = [c for c in columns if c.startswith("metrics.")]
    if metric_columns:
        frame[metric_columns] = frame[metric_columns].astype(float)
    return frame


def fold_table(frame: pandas.DataFrame) -> pandas.DataFrame:
    """Mean and std of every ``metrics.*`` column per hyper-parameter set, over its folds.

    The set is every ``params.*`` and ``hyper_params.*`` column and ``model``;
    rows come out in the order their set first appears. Columns: the set's
    columns, ``folds`` (how many runs), then ``metrics.<k>.mean`` and
    ``metrics.<k>.std`` per metric.
    """
    pd = require_pandas()
    keys = ["model"] + [c for c in frame.columns if c.startswith(("params.", "hyper_params."))]
    metrics = [c for c in frame.columns if c.startswith("metrics.")]
    if frame.empty:
        return pd.DataFrame(
            columns=[*keys, "folds", *(f"{m}.{s}" for m in metrics for s in ("mean", "std"))]
        )
    grouped = frame.groupby(keys, dropna=False, sort=False)
    table = grouped.size().rename("folds").to_frame()
    for metric in metrics:
        table[f"{metric}.mean"] = grouped[metric].mean()
        table[f"{metric}.std"] = grouped[metric].std()
    return table.reset_index()


__all__ = ["BASE_COLUMNS", "RunLike", "fold_table", "require_pandas", "runs_frame"]
