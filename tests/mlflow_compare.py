"""Run one MLflow program against MLflow's own file store and against aletheia, and
describe what each store then holds in terms that do not depend on the store.

Ids (runs, experiments, models), times, artifact URIs and MLflow's random run
names differ between any two stores; everything else a user reads back
(statuses, params, metrics, tags, dataset inputs, run outputs, logged models
with their params, tags, metrics, files) must be the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import LoggedModel, Run, ViewType

#: Tags that name the machine, the user, the time or another id.
VOLATILE_TAGS = {
    "mlflow.user",
    "mlflow.source.name",
    "mlflow.source.type",
    "mlflow.source.git.commit",
    "mlflow.source.git.branch",
    "mlflow.source.git.repoURL",
    "mlflow.runName",
    "mlflow.parentRunId",
    "mlflow.log-model.history",
    "mlflow.modelVersions",
}


@contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """MLflow pointed at ``uri`` for the block; no run or autolog left behind."""
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.autolog(disable=True)


def _metrics(metrics: dict[str, float]) -> dict[str, Any]:
    """Metric values; times (fit/score durations) only by name, as they vary run to run."""
    return {k: "<time>" if "time" in k else round(v, 6) for k, v in sorted(metrics.items())}


def _tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in sorted(tags.items()) if k not in VOLATILE_TAGS}


def describe(experiments: list[str], load: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """What the current tracking store holds for ``experiments``, without ids or times.

    Runs are labelled by their place (top-level runs in start order, children by
    their params); ``load(model_uri)`` (if given) is called for every logged
    model and its answer recorded too.
    """
    client = MlflowClient()
    out: dict[str, Any] = {}
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        assert exp is not None, name
        runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL)
        labels = _label_runs(runs)
        models = _all_models(client, exp.experiment_id)
        out[name] = {
            "runs": sorted(
                (_describe_run(client, r, labels, models) for r in runs), key=lambda d: d["label"]
            ),
            "models": sorted(
                (_describe_model(m, labels, load) for m in models.values()),
                key=lambda d: (d["run"] or "", d["name"]),
            ),
        }
    return out


def _all_models(client: MlflowClient, experiment_id: str) -> dict[str, LoggedModel]:
    found: dict[str, LoggedModel] = {}
    token = None
    while True:
        page = client.search_logged_models([experiment_id], max_results=2, page_token=token)
        found.update({m.model_id: m for m in page})
        token = page.token
        if not token:
            return found


def _label_runs(runs: list[Run]) -> dict[str, str]:
    by_id = {r.info.run_id: r for r in runs}
    labels: dict[str, str] = {}

    def label(run: Run) -> str:
        if run.info.run_id in labels:
            return labels[run.info.run_id]
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent in by_id:
            params = json.dumps(run.data.params, sort_keys=True)
            labels[run.info.run_id] = f"{label(by_id[parent])}/{params}"
        else:
            top = sorted(
                (r for r in runs if r.data.tags.get("mlflow.parentRunId") not in by_id),
                key=lambda r: r.info.start_time,
            )
            labels[run.info.run_id] = f"run{[r.info.run_id for r in top].index(run.info.run_id)}"
        return labels[run.info.run_id]

    for run in runs:
        label(run)
    return labels


def _describe_run(
    client: MlflowClient, run: Run, labels: dict[str, str], models: dict[str, LoggedModel]
) -> dict[str, Any]:
    histories = {
        k: [(round(m.value, 6), m.step) for m in client.get_metric_history(run.info.run_id, k)]
        for k in run.data.metrics
        if "time" not in k
    }
    outputs = run.outputs.model_outputs if run.outputs else []
    return {
        "label": labels[run.info.run_id],
        "status": run.info.status,
        "lifecycle": run.info.lifecycle_stage,
        "params": dict(sorted(run.data.params.items())),
        "metrics": _metrics(run.data.metrics),
        "histories": histories,
        "tags": _tags(run.data.tags),
        "datasets": sorted(
            (
                d.dataset.name,
                d.dataset.digest,
                d.dataset.source_type,
                tuple(sorted((t.key, t.value) for t in d.tags)),
            )
            for d in run.inputs.dataset_inputs
        ),
        "model_inputs": sorted(models[m.model_id].name for m in run.inputs.model_inputs),
        "outputs": sorted((models[o.model_id].name, o.step) for o in outputs),
    }


def _describe_model(
    model: LoggedModel, labels: dict[str, str], load: Callable[[str], Any] | None
) -> dict[str, Any]:
    uri = f"models:/{model.model_id}"
    files: list[str] = []
    if mlflow.artifacts.list_artifacts(artifact_uri=uri):
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    return {
        "name": model.name,
        "run": labels.get(model.source_run_id or ""),
        "status": str(model.status),
        "model_type": model.model_type,
        "params": dict(sorted(model.params.items())),
        "tags": _tags(model.tags),
        "metrics": sorted(
            (m.key, "<time>" if "time" in m.key else round(m.value, 6), m.step, m.dataset_name)
            for m in model.metrics or []
        ),
        "files": files,
        "loaded": None if load is None or not files else load(uri),
    }


def run_on_both(program: Callable[[], Any], file_uri: str, aletheia_uri: str) -> tuple[Any, Any]:
    """``program()``'s answer on MLflow's file store, then on aletheia."""
    with tracking_uri(file_uri):
        on_file = program()
    with tracking_uri(aletheia_uri):
        on_aletheia = program()
    return on_file, on_aletheia


def assert_same(on_aletheia: Any, on_file: Any, where: str = "") -> None:
    """``on_aletheia == on_file``, failing on the first differing leaf (named by its path)."""
    if isinstance(on_file, dict) and isinstance(on_aletheia, dict):
        assert sorted(on_aletheia) == sorted(on_file), where
        for key in on_file:
            assert_same(on_aletheia[key], on_file[key], f"{where}/{key}")
    elif (
        isinstance(on_file, list)
        and isinstance(on_aletheia, list)
        and len(on_file) == len(on_aletheia)
    ):
        for i, (a, f) in enumerate(zip(on_aletheia, on_file, strict=True)):
            assert_same(a, f, f"{where}[{i}]")
    else:
        assert on_aletheia == on_file, f"{where}: aletheia {on_aletheia!r}, file store {on_file!r}"
