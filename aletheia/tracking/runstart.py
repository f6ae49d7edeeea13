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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aletheia.cloud import limits
from aletheia.cloud.lazy import firestore
from aletheia.errors import ConfigError, ValidationError
from aletheia.tracking import ownership, validation
from aletheia.tracking.direct import start_call
from aletheia.tracking.runmodel import FAILED, RUNNING, RunRef, now
from aletheia.tracking.writing import RunWriteStore

if TYPE_CHECKING:
    from aletheia.data.blobstore import BlobStore

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


def capture_code_and_env(
    blobs: Callable[[], BlobStore],
    policy: str,
    repo_path: str | os.PathLike[str] | None,
    snapshot_max_bytes: int | None = None,
) -> dict[str, Any]:
    """git and env maps (and ``notebook`` in Jupyter); the diff, the untracked files, the
    package lists and the notebook become blobs.

    ``blobs`` builds the blob store when a blob is stored: Cloud Storage that
    cannot be reached (a local stack that is down) costs the run its blobs,
    never its start.

    The untracked files are kept within ``snapshot_max_bytes`` (default
    :data:`aletheia.tracking.snapshot.DEFAULT_MAX_BYTES`; 0: not kept), and
    not at all under the ``off`` policy, which records only what is cheap.
    """
    from aletheia.tracking import envinfo, envorigins, gitinfo, notebook, snapshot

    git = gitinfo.capture(Path(repo_path) if repo_path else None, policy=policy)
    env = envinfo.capture()
    git_doc = git.to_doc()
    env_doc = env.to_doc()
    git_doc["diff_ref"] = _blob_ref(blobs, git.diff.encode() if git.diff else None, "text/x-diff")
    limit = snapshot.DEFAULT_MAX_BYTES if snapshot_max_bytes is None else snapshot_max_bytes
    wanted = policy != "off" and git.commit is not None and git.untracked_count > 0
    git_doc["snapshot_ref"], git_doc["snapshot"] = snapshot.capture_and_store(
        blobs, git.root if wanted else None, limit
    )
    env_doc["packages_ref"] = _blob_ref(blobs, env.requirements_text().encode(), "text/plain")
    # Where each package came from and which the process imported (envfile renders them).
    dists = envorigins.capture()
    env_doc["imported_count"] = sum(1 for d in dists if d.imported)
    env_doc["distributions_ref"] = _blob_ref(blobs, envorigins.encode(dists), "application/json")
    found: dict[str, Any] = {"git": git_doc, "env": env_doc}
    path = notebook.current_path()
    if path is not None:  # started in Jupyter: the notebook itself, not a diff of its JSON
        content = notebook.read(path)
        found["notebook"] = {
            "path": str(path),
            "content_ref": _blob_ref(blobs, content, "application/x-ipynb+json"),
        }
    return found


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


def _blob_ref(
    blobs: Callable[[], BlobStore], data: bytes | None, content_type: str
) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        info = blobs().put_bytes(data, content_type=content_type)
    except ConfigError:
        raise  # a bucket that does not exist: said before the run document is written
    except Exception as exc:  # the run goes on without the blob
        log.warning("aletheia: could not store a blob (%s); recorded without it", exc)
        return None
    return {"sha256": info.sha256, "uri": info.uri, "size": info.size}


def record_unjournaled(writes: RunWriteStore, ref: RunRef, exc: OSError) -> None:
    """A run created but never started (no journal) ends ``failed``, not orphaned ``running``."""
    error = f"the run could not start: its journal could not be opened ({exc})"
    try:
        writes.set_fields(ref, {"status": FAILED, "ended_at": now(), "error": error})
    except Exception as write_exc:  # readers see it crashed once its heartbeat is stale
        log.warning("aletheia: could not mark run %s failed (%s)", ref.run, write_exc)
