"""A run's code and environment, captured beside the training thread rather than on it.

``start_run`` used to read git (status, remote scans, diff, untracked files),
scan the installed distributions and upload four blobs before it returned:
most of a second. Now a :class:`RunCapture` thread does it in two parts:

1. **At start** (``start_run`` waits for it, while the run document is
   created): the git state and the stamps of every changed and untracked
   file (:mod:`aletheia.tracking.gitstart`), the modules imported so far and
   the notebook's bytes. The git policy is applied on the caller's thread
   (warnings point at user code; ``strict`` refuses before anything is
   written).
2. **After start** (the run is already logging): the diff and the untracked
   files, *checked against the stamps* so an edit made after ``start_run``
   returned is left out and named (``git.changed_after_start``, a skipped
   file's reason) rather than recorded as what ran; the remote URL, the
   package list and origins, the blobs and their registry entries, and the
   experiment's next-number hint. The fields land with the run's next flush
   (journaled at once, like any field set).

The run document says where this stands in ``capture.state``:
``incomplete`` from its creation until the second part's fields arrive,
then ``complete``. A process that dies before then leaves ``incomplete``
(and ``capture.error`` says why when the second part failed): the record
never claims code or an environment it did not capture. The run's end waits
for the capture (up to its final retry time) before the final flush.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aletheia.tracking import envinfo, envorigins, gitinfo, gitstart, notebook, snapshot
from aletheia.tracking.gitstart import StartGit

if TYPE_CHECKING:
    from aletheia.data.blobstore import BlobStore

log = logging.getLogger(__name__)

FIELD = "capture"
INCOMPLETE, COMPLETE = "incomplete", "complete"


class CaptureTarget(Protocol):
    """Where the second part's fields go: the run
    (:meth:`aletheia.tracking.run.Run.record_capture`)."""

    def record_capture(self, fields: dict[str, Any]) -> bool:
        """Queue ``fields`` on the run; False when the run ended first."""
        ...


def incomplete(error: str | None = None) -> dict[str, Any]:
    """The ``capture`` map of a run whose capture has not (or could not) finish."""
    return {"state": INCOMPLETE, "error": error}


class RunCapture:
    """Captures one run's code and environment on a thread of its own (see the module doc)."""

    def __init__(
        self,
        blobs: Callable[[], BlobStore],
        policy: str,
        repo_path: str | os.PathLike[str] | None,
        snapshot_max_bytes: int | None = None,
    ) -> None:
        gitinfo.check_policy(policy)
        self._blobs = blobs
        self._policy = policy
        self._path = Path(repo_path) if repo_path else gitinfo.default_path()
        limit = snapshot_max_bytes
        self._limit = snapshot.DEFAULT_MAX_BYTES if limit is None else limit
        # What the process has imported, and the notebook, as they are now (cheap).
        self._imported = envorigins.imported_modules()
        path = notebook.current_path()
        self._notebook = (path, notebook.read(path)) if path is not None else None
        self._start: StartGit | None = None
        self._start_error: BaseException | None = None
        self._start_fields: dict[str, Any] | None = None
        self._git_ready = threading.Event()
        self._go = threading.Event()
        self._done = threading.Event()
        self._target: CaptureTarget | None = None
        self._after: list[Callable[[dict[str, Any]], None]] = []
        self._thread = threading.Thread(target=self._work, name="aletheia-capture", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------- the caller's thread

    def start_fields(self) -> dict[str, Any]:
        """The run's ``git`` map as it started, its policy applied here (warnings, or the
        ``strict`` refusal); the ``capture`` map says the rest is still to come."""
        if self._start_fields is None:
            self._git_ready.wait()
            if self._start is None:  # git could not be read at all (not a git problem)
                if self._policy == "strict":
                    assert self._start_error is not None
                    raise self._start_error
                self._start = StartGit(gitinfo.GitInfo(False, error=repr(self._start_error)))
            gitinfo.apply_policy(self._start.info, self._policy)
            fields: dict[str, Any] = {"git": _git_doc(self._start), "env": None}
            fields[FIELD] = incomplete()
            if self._notebook is not None:
                fields["notebook"] = {"path": str(self._notebook[0]), "content_ref": None}
            self._start_fields = fields
        return {k: dict(v) if isinstance(v, dict) else v for k, v in self._start_fields.items()}

    def attach(
        self, target: CaptureTarget, after: list[Callable[[dict[str, Any]], None]] | None = None
    ) -> None:
        """Go on with the second part for ``target``; then call each of ``after`` with the
        fields recorded (blob registry, the next-number hint), each on its own."""
        self._target = target
        self._after = list(after or [])
        self._go.set()

    def cancel(self) -> None:
        """The run did not start: the thread stops after the first part."""
        self._go.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the capture to finish; True when it has."""
        return self._done.wait(timeout)

    # ----------------------------------------------------------- the capture thread

    def _work(self) -> None:
        try:
            try:
                self._start = gitstart.read_tree(self._path, cheap=self._policy == "off")
            except BaseException as exc:  # said on the caller's thread
                self._start_error = exc
            finally:
                self._git_ready.set()
            self._go.wait()
            target = self._target
            if target is None or self._start is None:
                return
            try:
                fields = self._rest(self._start)
            except Exception as exc:  # the run goes on; its record says what is missing
                log.warning("aletheia: could not capture the run's code and environment (%s)", exc)
                target.record_capture({FIELD: incomplete(f"{type(exc).__name__}: {exc}"[:500])})
                return
            if not target.record_capture(fields):
                return
            for step in self._after:
                try:
                    step(fields)
                except Exception as exc:  # each is best effort
                    log.warning("aletheia: after the run's capture: %s", exc)
        finally:
            self._done.set()

    def _rest(self, start: StartGit) -> dict[str, Any]:
        git_doc = _git_doc(start)
        info = start.info
        moved: list[str] = []
        if self._policy != "off":
            text, truncated, moved = gitstart.diff(start, gitinfo.MAX_DIFF_BYTES)
            git_doc["diff_ref"] = self._blob_ref(text.encode() if text else None, "text/x-diff")
            git_doc["diff_truncated"] = truncated
        wanted = self._policy != "off" and info.commit is not None and info.untracked_count > 0
        git_doc["snapshot_ref"], git_doc["snapshot"] = snapshot.capture_and_store(
            self._blobs,
            info.root if wanted else None,
            self._limit,
            existed=start.existed,
            as_started=start.unchanged,
        )
        git_doc["changed_after_start"] = moved
        if info.root is not None:
            git_doc["remote"] = gitinfo.remote_of(Path(info.root), info.branch, info.upstream)
        env = envinfo.capture()
        env_doc = env.to_doc()
        env_doc["packages_ref"] = self._blob_ref(env.requirements_text().encode(), "text/plain")
        dists = envorigins.distributions(self._imported)
        env_doc["imported_count"] = sum(1 for d in dists if d.imported)
        env_doc["distributions_ref"] = self._blob_ref(envorigins.encode(dists), "application/json")
        found: dict[str, Any] = {"git": git_doc, "env": env_doc, FIELD: {"state": COMPLETE}}
        if self._notebook is not None:
            path, content = self._notebook
            found["notebook"] = {
                "path": str(path),
                "content_ref": self._blob_ref(content, "application/x-ipynb+json"),
            }
        return found

    def _blob_ref(self, data: bytes | None, content_type: str) -> dict[str, Any] | None:
        if not data:
            return None
        try:
            info = self._blobs().put_bytes(data, content_type=content_type)
        except Exception as exc:  # the run goes on without the blob (a missing bucket too)
            log.warning("aletheia: could not store a blob (%s); recorded without it", exc)
            return None
        return {"sha256": info.sha256, "uri": info.uri, "size": info.size}


def _git_doc(start: StartGit) -> dict[str, Any]:
    """The ``git`` map as the tree started: no blobs yet."""
    doc = start.info.to_doc()
    doc.update({"diff_ref": None, "snapshot_ref": None, "snapshot": None})
    return doc


__all__ = ["COMPLETE", "FIELD", "INCOMPLETE", "CaptureTarget", "RunCapture", "incomplete"]
