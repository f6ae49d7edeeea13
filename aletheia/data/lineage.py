"""Which data a run used, which runs used a dataset version, which datasets hold some bytes."""

from __future__ import annotations

from typing import Any

from aletheia.cloud import layout, queries
from aletheia.cloud.lazy import firestore
from aletheia.errors import NotFoundError


def datasets_used_by_run(
    db: firestore.Client, project: str, experiment: str, run_id: str
) -> list[dict[str, str]]:
    """ "Which data did this run use": the ``{name, version}`` list on the run document."""
    snap = db.document(layout.run(project, experiment, run_id)).get()
    if not snap.exists:
        raise NotFoundError(f"no run {run_id!r} in experiment {experiment!r}")
    return list((snap.to_dict() or {}).get("datasets", []))


def runs_using_dataset(db: firestore.Client, project: str, name: str, version: str) -> list[str]:
    """ "Which runs used this data": document paths of runs (any experiment) that used it."""
    query = queries.project_runs_using_dataset(db, project, name, version)
    return [snap.reference.path for snap in queries.under_project(query.stream(), project)]


def dataset_versions_with_file(
    db: firestore.Client, project: str, sha256: str
) -> list[dict[str, Any]]:
    """Latest-manifest entries of datasets holding these bytes: ``{dataset, path, version}``."""
    query = queries.dataset_versions_with_file(db, project, sha256)
    return [
        {k: d.get(k) for k in ("dataset", "path", "version", "size")}
        for d in (s.to_dict() or {} for s in queries.under_project(query.stream(), project))
    ]


def run_label(path: str) -> str:
    """``experiment/run`` of a run document path ``Projects/p/Experiments/e/Runs/r``."""
    parts = path.split("/")
    return f"{parts[3]}/{parts[5]}" if len(parts) >= 6 else path
