"""``search_runs`` of the MLflow tracking store: MLflow's filters and order on aletheia's runs.

The runs are read through the read interface, as few as the search allows
(:mod:`aletheia.integrations.mlflow.searchplan`: filters and an order the
read API serves, the page as its limit), then filtered, sorted and paged by
MLflow's own ``SearchUtils``, so the answer is the one MLflow's own stores
give. Page tokens are MLflow's offsets: a later page reads the earlier ones
again.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlflow.entities import LifecycleStage, Run
from mlflow.utils.search_utils import SearchUtils

from aletheia.integrations.mlflow import searchplan
from aletheia.integrations.mlflow.entities import check_filter, to_mlflow_run
from aletheia.integrations.mlflow.storebase import StoreBase
from aletheia.tracking.readapi import RunView
from aletheia.tracking.runsearch import is_missing


class RunSearching(StoreBase):
    """MLflow's ``_search_runs`` over the project's runs (mixed into the store)."""

    def _search_runs(
        self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
    ):
        """Runs of the experiments, filtered, sorted and paged by MLflow's own rules."""
        check_filter(filter_string)
        plan = searchplan.plan(filter_string, order_by, run_view_type)  # errors before reads
        for run in self._open.values():
            if run.is_active:
                run.flush()
        names = [self._exper_name(experiment_id) for experiment_id in experiment_ids]
        needed = SearchUtils.parse_start_offset_from_page_token(page_token) + max_results
        runs = self._candidates(names, plan, filter_string, run_view_type, needed) if names else []
        runs = SearchUtils.sort(runs, order_by)
        return SearchUtils.paginate(runs, page_token, max_results)

    def _candidates(
        self,
        names: list[str],
        plan: searchplan.SearchPlan,
        filter_string: str | None,
        view_type: int,
        needed: int,
    ) -> list[Run]:
        """Every run MLflow's first ``needed`` can be, passing MLflow's filter and view type.

        With an order the read API serves, the runs are read in that order in
        pages (the page and one more, then doubling) until
        :func:`~aletheia.integrations.mlflow.searchplan.done`; reaching runs
        without the value (whose order differs), every run is read instead.
        """

        def wanted(views: Iterable[RunView]) -> list[Run]:
            runs = [to_mlflow_run(self.project, v.experiment, v.doc) for v in views]
            stage = LifecycleStage.matches_view_type
            runs = [r for r in runs if stage(view_type, r.info.lifecycle_stage)]
            return SearchUtils.filter(runs, filter_string) if filter_string else runs

        size = needed + 1
        while plan.ordered():
            page = self.reader.search_runs(names, **plan.in_order(size))
            runs = wanted(page)
            if page.next_page_token is None:  # every run the read API's filters let through
                return runs
            valued = [v for v in map(plan.value, runs) if not is_missing(v)]
            if searchplan.done(valued, needed):
                return runs
            if any(plan.missing(view) for view in page):
                # Past the runs with a value (all read, so no tie is cut): enough if they
                # fill the page and more runs follow; else the runs without the value
                # count, and MLflow orders them otherwise than the read API.
                if len(valued) >= needed and len(runs) > needed:
                    return runs
                break
            size *= 2
        return wanted(self.reader.search_runs(names, **plan.query))


__all__ = ["RunSearching"]
