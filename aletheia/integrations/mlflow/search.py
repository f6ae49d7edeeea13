"""``search_runs`` of the MLflow tracking store: MLflow's filters and order on aletheia's runs.

Runs are read through the read interface and filtered, sorted and paged by
MLflow's own ``SearchUtils``, so the answer is the one MLflow's own stores give.
"""

from __future__ import annotations

from mlflow.entities import LifecycleStage, Run
from mlflow.utils.search_utils import SearchUtils

from aletheia.integrations.mlflow.entities import check_filter, to_mlflow_run
from aletheia.integrations.mlflow.storebase import StoreBase


class RunSearching(StoreBase):
    """MLflow's ``_search_runs`` over the project's runs (mixed into the store)."""

    def _search_runs(
        self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
    ):
        """Runs of the experiments, filtered and sorted in Python by MLflow's own rules."""
        check_filter(filter_string)
        for run in self._open.values():
            if run.is_active:
                run.flush()
        names = [self._exper_name(experiment_id) for experiment_id in experiment_ids]
        views = self.reader.search_runs(names) if names else []
        runs: list[Run] = [to_mlflow_run(self.project, v.experiment, v.doc) for v in views]
        runs = [
            r
            for r in runs
            if LifecycleStage.matches_view_type(run_view_type, r.info.lifecycle_stage)
        ]
        runs = SearchUtils.filter(runs, filter_string)
        runs = SearchUtils.sort(runs, order_by)
        return SearchUtils.paginate(runs, page_token, max_results)


__all__ = ["RunSearching"]
