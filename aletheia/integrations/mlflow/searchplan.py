"""What of an MLflow run search the read API can serve, decided without I/O.

MLflow's ``search_runs`` is answered by MLflow's own ``SearchUtils`` over the
runs read, so its semantics are MLflow's whatever is read. This module says
how little may be read:

* **filters** that the read API applies (:class:`~aletheia.tracking.runsearch.RunQuery`):
  ``attributes.status`` ``=`` / ``!=`` (as effective statuses: ``FAILED`` is
  ``failed`` or ``crashed``), and ``params.x = 'v'``. Each is implied by
  MLflow's filter, so what the read API drops MLflow would drop too; the
  rest of the filter (tags, metrics, ``LIKE`` ...) is applied to what is read.
* **the order**, when its first term is one the read API reads in the
  server's order *and* MLflow orders the same way, ties aside: a metric
  (``summary.<m>.last``, either direction) or the start time, newest first
  (also MLflow's default). The runs are then read in that order only until
  the page is full and the last value on it no longer ties: MLflow breaks
  ties by start time and run id, the read API by run id, so the whole tie
  is read and MLflow sorts it. Runs without the value come last in both but
  in different orders; a search that reaches them reads every run instead.
  Any other order (params, tags, the oldest first, ...) reads every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Run, ViewType
from mlflow.utils.search_utils import SearchUtils

from aletheia.integrations.mlflow.entities import statuses_of
from aletheia.tracking import runmodel
from aletheia.tracking.readapi import RunView
from aletheia.tracking.runsearch import RunQuery, is_missing, parse_order_by

#: MLflow's natural order of runs: newest start first (then run id).
NATURAL_ORDER = ("attribute", "start_time", False)


@dataclass(frozen=True)
class SearchPlan:
    """What the read API is asked: ``query`` (filters implied by MLflow's) and, if it can
    serve the order, ``order_by`` (the read API's spelling) and the MLflow term it stands
    for (``key_type``, ``key``)."""

    query: RunQuery = field(default_factory=lambda: RunQuery())
    order_by: str | None = None
    key_type: str | None = None
    key: str | None = None

    def value(self, run: Run) -> Any:
        """The value MLflow orders ``run`` by in the leading term (None or NaN: missing)."""
        if self.key_type == "metric":
            return run.data.metrics.get(str(self.key))
        if self.key_type == "attribute":
            return getattr(run.info, str(self.key))
        return None

    def in_order(self, limit: int) -> RunQuery:
        """The read API's query for the first ``limit`` runs in the order it serves."""
        query = self.query.copy()
        query["order_by"] = self.order_by
        query["limit"] = limit
        return query

    def missing(self, view: RunView) -> bool:
        """True if ``view`` has no value in the order the read API reads (it comes last)."""
        if self.order_by is None:
            return False
        return is_missing(parse_order_by(self.order_by)[0].value(view.doc))

    def ordered(self) -> bool:
        """True if the read API can read the runs in the search's order."""
        return self.order_by is not None


def plan(
    filter_string: str | None, order_by: list[str] | None, view_type: int = ViewType.ACTIVE_ONLY
) -> SearchPlan:
    """The plan for MLflow's ``filter_string``, ``order_by`` and ``view_type`` (MLflow's
    errors for bad ones)."""
    query = _query(SearchUtils.parse_search_filter(filter_string) if filter_string else [])
    if order_by:
        key_type, key, ascending = SearchUtils.parse_order_by_for_search_runs(order_by[0])
        key = SearchUtils.translate_key_alias(key)
    else:
        key_type, key, ascending = NATURAL_ORDER
    direction = "ASC" if ascending else "DESC"
    if view_type == ViewType.DELETED_ONLY:
        # Deleted runs are few: reading in order to find them would read nearly every
        # run, the first pages more than once. They are read once, whole.
        return SearchPlan(query)
    if key_type == "metric":
        return SearchPlan(query, f"metrics.{key} {direction}", key_type, key)
    if (key_type, key, ascending) == NATURAL_ORDER:
        # Oldest first is not served: runs without a start time would come first in
        # MLflow's order (its start_time 0) and last in the read API's.
        return SearchPlan(query, "attributes.start_time DESC", key_type, key)
    return SearchPlan(query)


def _query(clauses: list[dict[str, Any]]) -> RunQuery:
    """The filters of ``clauses`` the read API applies, each implied by its clause."""
    query = RunQuery()
    statuses: frozenset[str] | None = None
    params: dict[str, str] = {}
    for clause in clauses:
        kind, key, op, value = (clause.get(k) for k in ("type", "key", "comparator", "value"))
        if kind == "attribute" and key == "status" and op in ("=", "!="):
            named = statuses_of(str(value))
            allowed = named if op == "=" else frozenset(runmodel.STATUSES) - named
            statuses = allowed if statuses is None else statuses & allowed
        elif kind == "parameter" and op == "=" and isinstance(value, str) and value != "None":
            # MLflow compares the text of a param; the read API matches its text too. Any
            # one clause of the filter (they are joined by AND) is implied by all of them.
            params.setdefault(str(key), value)
    if statuses:  # none at all: no aletheia status is that; MLflow's filter says so
        query["status"] = sorted(statuses)
    if params:
        query["params"] = params
    return query


def done(values: list[Any], needed: int) -> bool:
    """True if the runs kept so far (their values, in the read API's order) hold MLflow's
    first ``needed``: more than that, and the last one no longer ties with the ``needed``-th."""
    return len(values) > needed and (needed == 0 or values[-1] != values[needed - 1])


__all__ = ["NATURAL_ORDER", "SearchPlan", "done", "is_missing", "plan"]
