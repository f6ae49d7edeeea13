"""Register in the blob registry what a project recorded before the registry existed.

New holders register their blobs as they are created (:mod:`aletheia.data.blobrefs`).
A project older than that has holders the registry does not know: ``rm`` keeps
every blob with no entry, but a blob an old holder shares with a *newer*
dataset version has an entry naming only that dataset. Walking the project
once (datasets' versions, artifacts' versions, runs' diffs and package lists,
files logged through MLflow) and recording every holder closes that gap.
The writes are idempotent merges, so running it again is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.cloud import firestore

from aletheia.cloud import layout
from aletheia.data import blobrefs
from aletheia.data.artifacts import ArtifactStore
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore


@dataclass(frozen=True)
class BackfillResult:
    """How many holders of each kind were registered, and the writes it took."""

    datasets: int
    artifacts: int
    runs: int
    mlflow_files: int
    references: int
    writes: int


def backfill(
    db: firestore.Client, blobs: BlobStore, cache: LocalCache, project: str
) -> BackfillResult:
    """Record every holder of every blob of ``project`` in the registry (costs one pass)."""
    refs: list[blobrefs.Reference] = []
    datasets = DatasetStore(db, blobs, cache, project)
    names = [str(d["name"]) for d in datasets.list_datasets() if d.get("name")]
    for name in names:
        for version in datasets.versions(name):
            digests = {e.sha256 for e in datasets.manifest(name, version["version"]).values()}
            refs += blobrefs.dataset_references(name, digests | {version["manifest_sha256"]})
    artifacts = ArtifactStore(db, blobs, cache, project)
    counts = {"artifacts": 0, "runs": 0, "mlflow": 0}
    for exp in (s.id for s in db.collection(layout.experiments(project)).stream()):
        for art in artifacts.list_artifacts(exp):
            counts["artifacts"] += 1
            for version in artifacts.versions(exp, str(art["name"])):
                av = artifacts.get(exp, str(art["name"]), str(version["version"]))
                held = [f.sha256 for f in av.files if av.uploaded]
                held += [av.manifest_sha256] if av.manifest_sha256 else []
                refs += blobrefs.artifact_references(exp, av.name, held, av.run)
        for run in db.collection(layout.runs(project, exp)).stream():
            counts["runs"] += 1
            refs += blobrefs.run_references(exp, run.id, run.to_dict() or {})
            logged = db.collection(layout.run_artifact_files(project, exp, run.id)).stream()
            for entry in (s.to_dict() or {} for s in logged):
                if entry.get("sha256") and entry.get("path"):
                    counts["mlflow"] += 1
                    refs.append(
                        blobrefs.mlflow_reference(
                            exp, run.id, str(entry["sha256"]), str(entry["path"])
                        )
                    )
    writes = blobrefs.record(db, project, refs)
    return BackfillResult(
        len(names), counts["artifacts"], counts["runs"], counts["mlflow"], len(refs), writes
    )
