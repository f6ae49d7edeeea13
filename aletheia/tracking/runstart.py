"""What a run starts with: its checked fields, the code and environment it ran, their blobs.

``Experiment.start_run`` builds the run document from these before anything
is written (a strict git policy refuses first, and leaves no trace); the
diff and the package list become content-addressed blobs that the run
document references and the blob registry knows the run holds.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aletheia.cloud import limits
from aletheia.cloud.lazy import firestore
from aletheia.errors import ValidationError
from aletheia.tracking import ownership, validation
from aletheia.tracking.direct import start_call
from aletheia.tracking.runmodel import FAILED, RUNNING, RunRef, now
from aletheia.tracking.writing import RunWriteStore

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def lifecycle_fields(
    project: str, experiment: str, heartbeat_s: float, debug: bool
) -> dict[str, Any]:
    """The fields every run starts with: running now, owned by this process, nothing logged."""
    started = now()
    return {
        # Named in the document too, for collection-group queries across a project.
        "project": project,
        "experiment": experiment,
        "status": RUNNING,
        "started_at": started,
        "heartbeat_at": started,
        "heartbeat_interval_s": heartbeat_s,
        "ended_at": None,
        "saved_model": None,
        "error": None,
        "datasets": [],
        "dataset_refs": [],
        "artifacts": [],
        "summary": {},
        "debug": debug,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        ownership.OWNER: ownership.new_token(),  # this process owns the run
    }


def fold_value(fold: Any) -> int | None:
    """A run's ``fold``: ``None`` or an int."""
    if fold is None:
        return None
    if isinstance(fold, bool) or not isinstance(fold, int):
        raise ValidationError(f"fold must be an int, got {fold!r}", "pass e.g. fold=1")
    return validation.validate_int(fold, "fold")


def model_doc(model: Any) -> dict[str, Any] | None:
    """``{name, class, ...}`` for a model given as a name, a dict or an object."""
    if model is None:
        return None
    if isinstance(model, str):
        return {"name": limits.validate_text(model, "model name")}
    if isinstance(model, Mapping):
        return validation.validate_params(model, "model")
    cls = type(model)
    name = getattr(model, "name", None)
    return {
        "name": str(name) if isinstance(name, str) else cls.__name__,
        "class": f"{cls.__module__}.{cls.__qualname__}",
    }


def register_blobs(
    db: firestore.Client, project: str, experiment: str, run_id: str, fields: dict[str, Any]
) -> None:
    """Tell the blob registry this run holds its diff, untracked files and package lists
    (best effort: a blob with no entry is kept by ``datasets rm`` anyway)."""
    from aletheia.data import blobrefs
    from aletheia.tracking import snapshot

    manifest = ((fields.get("git") or {}).get("snapshot_ref") or {}).get("sha256")
    files = snapshot.file_digests(manifest) if manifest else []
    try:
        refs = blobrefs.run_references(experiment, run_id, fields, files)
        blobrefs.record(db, project, refs, call=start_call())
    except Exception as exc:
        log.warning("aletheia: could not register the run's blobs (%s)", exc)


def record_unjournaled(writes: RunWriteStore, ref: RunRef, exc: OSError) -> None:
    """A run created but never started (no journal) ends ``failed``, not orphaned ``running``."""
    error = f"the run could not start: its journal could not be opened ({exc})"
    try:
        writes.set_fields(ref, {"status": FAILED, "ended_at": now(), "error": error})
    except Exception as write_exc:  # readers see it crashed once its heartbeat is stale
        log.warning("aletheia: could not mark run %s failed (%s)", ref.run, write_exc)
