"""An experiment: ``Experiment``, a family of runs (``Projects/{p}/Experiments/{name}``).

``ms.exper(name)`` creates it on first use (or works offline when Firestore
cannot be reached); ``exper.start_run()`` opens its runs
(:mod:`aletheia.tracking.runopen`), and ``exper.runs()`` / ``exper.run(id)``
read them back through the read interface (:mod:`aletheia.tracking.readapi`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aletheia.cloud import layout, limits
from aletheia.cloud.lazy import firestore, gexc
from aletheia.errors import ValidationError
from aletheia.tracking import direct, nblaunch, runcapture, runopen, runstart, validation
from aletheia.tracking.project import Project
from aletheia.tracking.readapi import RunPage, RunView
from aletheia.tracking.run import Run
from aletheia.tracking.runmodel import FINISHED, now
from aletheia.tracking.runsearch import RunQuery
from aletheia.tracking.store import Write

if TYPE_CHECKING:
    import pandas
    from typing_extensions import Unpack  # typing.Unpack is Python 3.11+

    from aletheia.data.artifacts import ArtifactVersion

log = logging.getLogger(__name__)


def _create_if_missing(db: firestore.Client, path: str, data: dict[str, Any]) -> bool:
    """``create`` a document; False if it already existed.

    Retried within the start deadline: a retry of a create that landed finds the document,
    which is the answer wanted.
    """
    try:
        db.document(path).create(data, **direct.start_call())
    except gexc.AlreadyExists:
        return False
    return True


class Experiment:
    """``Projects/{p}/Experiments/{name}``: a family of runs."""

    def __init__(
        self,
        ms: Project,
        name: str,
        *,
        debug: bool = False,
        auto_inc_ids: bool = True,
        git_policy: str | None = None,
    ) -> None:
        self.ms = ms
        self.name = layout.validate_id(name, "experiment name")
        self.debug = bool(debug)
        self.auto_inc_ids = bool(auto_inc_ids)
        self.git_policy = git_policy or ms.settings.git_policy
        self.path = layout.experiment(ms.project, self.name)
        self._desc = ""
        self.active_run: Run | None = None
        #: Where the next numbered run's id is first tried (the stored ``next_run_id`` as
        #: this object last knew it): one ``create`` starts a run, no read before it.
        self.next_number: int | None = None
        self.online = self._ensure()

    def _ensure(self) -> bool:
        from aletheia.cloud.transient import TRANSIENT

        self.ms._check_bucket()
        try:
            self.ms._ensure_project()
            doc = {"name": self.name, "desc": "", "next_run_id": 1, "created_at": now()}
            if _create_if_missing(self.ms.db, self.path, doc):
                self.next_number = 1
            else:
                snap = self.ms.db.document(self.path).get(**direct.start_call())
                found = snap.to_dict() or {}
                self._desc = str(found.get("desc", ""))
                hint = found.get("next_run_id")
                self.next_number = hint if isinstance(hint, int) and hint > 0 else None
        except TRANSIENT as exc:
            log.warning("aletheia: Firestore unreachable (%s); experiment works offline", exc)
            return False
        return True

    @property
    def desc(self) -> str:
        """Free-text description; assigning it saves it."""
        return self._desc

    @desc.setter
    def desc(self, value: str) -> None:
        from aletheia.cloud.transient import TRANSIENT

        self._desc = limits.validate_text(value, "experiment description")
        try:
            self.ms.store.commit([Write(self.path, {"desc": self._desc}, merge=True)])
        except TRANSIENT as exc:  # a description is not worth stopping training for
            log.warning("aletheia: could not save the description of %s (%s)", self.name, exc)

    def start_run(
        self,
        fold: int | None = None,
        *,
        run_id: str | None = None,
        model: Any = None,
        params: Mapping[str, Any] | None = None,
        hyper_params: Mapping[str, Any] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        git_policy: str | None = None,
        repo_path: str | os.PathLike[str] | None = None,
    ) -> Run:
        """Start a run (use it as a context manager).

        Git is checked under ``git_policy`` (default: the experiment's, then
        the ``git_policy`` setting) before this returns, and under ``strict``
        *before* anything is written, so a strict refusal leaves no trace.
        The diff, the untracked files and the environment are captured in the
        background as they were at this call (:mod:`aletheia.tracking.runcapture`).
        """
        fields = {
            "fold": runstart.fold_value(fold),
            "model": runstart.model_doc(model),
            "params": validation.validate_params(params or {}, "params"),
            "hyper_params": validation.validate_params(hyper_params or {}, "hyper_params"),
            "log_dir": limits.validate_text(log_dir, "log_dir") if log_dir else None,
        }
        policy = git_policy or self.git_policy
        limit = self.ms.settings.snapshot_max_bytes  # of untracked files kept
        if run_id is not None:
            layout.validate_id(run_id, "run id")
        # Code and environment are read beside the run's creation, and mostly after it.
        capture = runcapture.RunCapture(lambda: self.ms.blobstore, policy, repo_path, limit)
        try:
            if policy == "strict":  # the tree is checked before anything is written
                fields.update(capture.start_fields())
            run = runopen.open_run(self, fields, run_id, capture)
        except BaseException:
            capture.cancel()
            raise
        self.active_run = run
        nblaunch.note_started(run.ref)  # for `aletheia run nb.ipynb`, when it started us
        if self.ms.sync_on_start and self.online:
            threading.Thread(
                target=self._settle_leftovers, name="aletheia-sync", daemon=True
            ).start()
        return run

    def _settle_leftovers(self) -> None:
        """Replay journals of earlier runs of this experiment that never reached Firestore."""
        from aletheia.tracking import sync

        sync.settle_leftovers(self.ms.settings, self.ms.project, self.name, self.ms.store)

    def add_metric(self, name: str, value: Any, step: int | None = None) -> None:
        """Log a metric to the experiment's active run."""
        self._run_for("add_metric").add_metric(name, value, step)

    def log_metrics(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Log several metrics to the active run."""
        self._run_for("log_metrics").log_metrics(values, step)

    def add_artifact(
        self,
        name: str,
        path: str | Path,
        is_local: bool = True,
        is_dir: bool = False,
        upload_file: bool = True,
    ) -> dict[str, Any]:
        """Save a new version of an artifact of the experiment (see :meth:`Run.add_artifact`).

        Inside a run it is that run's save (and listed on its document);
        outside, the version names no run.
        """
        if self.active_run is not None and self.active_run.is_active:
            return self.active_run.add_artifact(name, path, is_local, is_dir, upload_file)
        return self.ms._add_artifact(
            self.name, None, name, path, is_local=is_local, is_dir=is_dir, upload_file=upload_file
        )

    def get_artifact(self, name: str, version: str | None = None) -> ArtifactVersion:
        """Version ``version`` (default: the latest) of artifact ``name``, whichever run saved it.

        The result lists the files and downloads them through the local cache
        (``.download(to)``), verified by sha256.
        """
        return self.ms.artifacts.get(self.name, name, version)

    def _run_for(self, what: str) -> Run:
        run = self.active_run
        if run is None or not run.is_active:
            raise ValidationError(
                f"{what} on experiment {self.name!r} needs an active run",
                "call it inside `with exper.start_run(...) as run:`",
            )
        return run

    # ----------------------------------------------------------- reading (readapi)

    def runs(self, **query: Unpack[RunQuery]) -> RunPage:
        """Runs of this experiment as read-only views, e.g. ``status="finished"``,
        ``order_by="metrics.val/acc DESC"``, ``limit=10`` (every keyword:
        :class:`~aletheia.tracking.runsearch.RunQuery`)."""
        return self.ms.reader.search_runs([self.name], **query)

    def run(self, run_id: str) -> RunView:
        """Run ``run_id`` as a read-only :class:`~aletheia.tracking.readapi.RunView`."""
        return self.ms.reader.get_run(self.name, run_id)

    def runs_frame(self, **query: Unpack[RunQuery]) -> pandas.DataFrame:
        """The runs (filtered as :meth:`runs`) as a pandas DataFrame, one row per run."""
        from aletheia.tracking import frames

        return frames.runs_frame(self.runs(**query))

    def fold_table(self, **query: Unpack[RunQuery]) -> pandas.DataFrame:
        """Mean ± std of final metrics per hyper-parameter set over folds (``finished`` runs
        unless ``status`` says otherwise)."""
        from aletheia.tracking import frames

        query.setdefault("status", FINISHED)
        return frames.fold_table(frames.runs_frame(self.runs(**query)))


__all__ = ["Experiment"]
