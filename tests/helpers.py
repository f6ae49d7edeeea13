"""Small helpers shared by tests (importable as ``helpers``).

Waits for asynchronous work (the storage function, the background writer)
end on an event or a condition, never on a fixed sleep, and their ceilings
are generous: a loaded CI machine may take minutes where a laptop takes
seconds, and a slow pass is not a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import firestore, storage

from aletheia.cloud import config, layout
from aletheia.cloud.config import LOCAL_CLOUD_PROJECT
from aletheia.data.blobstore import BlobStore
from aletheia.data.cache import LocalCache
from aletheia.data.datasets import DatasetStore
from aletheia.devstack import local

#: Ceiling of every wait: only a broken system takes this long.
GENEROUS_S = 300.0


def wait_for(
    probe: Callable[[], Any], *, timeout: float = GENEROUS_S, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what or probe}")


def bridge_counters(settings: config.Settings) -> dict[str, int]:
    """The local event bridge's counters (``delivered``, ``failed``, ``ignored``, and
    ``in_flight``: events pulled and not yet answered by the function)."""
    state = local.load_state(settings.stack_dir)
    assert state is not None, f"no local stack in {settings.stack_dir}"
    return dict(requests.get(state.parts["bridge"].health_url, timeout=10).json())


def wait_function_idle(settings: config.Settings) -> None:
    """Wait until the storage function is working on no event (the bridge delivers one
    at a time and counts what it pulled until the function answers)."""
    wait_for(
        lambda: bridge_counters(settings)["in_flight"] == 0,
        interval=0.05,
        what="the storage function to finish the event it is working on",
    )


def wait_for_document(
    db: firestore.Client,
    path: str,
    condition: Callable[[Mapping[str, Any]], bool],
    *,
    timeout: float = GENEROUS_S,
    what: str = "",
) -> dict[str, Any]:
    """The document at ``path`` once ``condition`` holds, woken by Firestore's listener.

    The wait ends on the event that changes the document (``on_snapshot``),
    not on a polling interval, so a busy machine only delays it. A listener whose
    stream the emulator cut (``RST_STREAM`` under load) stops for good: the client does
    not reconnect it, so a new one takes over, and its first snapshot is the document
    as it is by then.
    """
    matched: dict[str, Any] = {}
    done = threading.Event()

    def on_snapshot(snapshots: list[Any], _changes: Any, _read_time: Any) -> None:
        for snapshot in snapshots:
            data = snapshot.to_dict() if snapshot.exists else None
            if data is not None and condition(data):
                matched.update(data)
                done.set()

    deadline = time.monotonic() + timeout
    watch = db.document(path).on_snapshot(on_snapshot)
    try:
        while not done.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what or path}")
            if not watch.is_active:
                watch.unsubscribe()
                watch = db.document(path).on_snapshot(on_snapshot)
    finally:
        watch.unsubscribe()
    return matched


# Firestore RPCs the Python client makes (methods of its generated API client).
_FIRESTORE_RPCS = (
    "get_document",
    "batch_get_documents",
    "run_query",
    "run_aggregation_query",
    "list_documents",
    "commit",
    "batch_write",
    "begin_transaction",
    "rollback",
)


@contextmanager
def count_rpcs(db: Any) -> Iterator[Counter[str]]:
    """Count the Firestore RPCs ``db`` sends inside the block, by method (reads and writes).

    The calls still go to the real emulator: each method of the client's API
    object is wrapped to count before it calls through, and restored after.
    """
    api = db._firestore_api
    counts: Counter[str] = Counter()

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return method(*args, **kwargs)

        return call

    for name in _FIRESTORE_RPCS:
        setattr(api, name, counted(name, getattr(api, name)))
    try:
        yield counts
    finally:
        for name in _FIRESTORE_RPCS:
            delattr(api, name)


@contextmanager
def count_documents_read(db: Any) -> Iterator[Counter[str]]:
    """Count the documents Firestore returns to ``db`` inside the block (what it bills as
    reads), by method: ``run_query`` results, ``batch_get_documents`` found, ``get_document``.

    The streams still come from the real emulator; each response is counted as the
    client consumes it, so a query abandoned early counts only what was delivered.
    """
    api = db._firestore_api
    counts: Counter[str] = Counter()

    def streamed(name: str, method: Callable[..., Any], field: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[f"{name} calls"] += 1
            for response in method(*args, **kwargs):
                if type(response).pb(response).HasField(field):
                    counts[name] += 1
                yield response

        return call

    def single(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts["get_document"] += 1
            return method(*args, **kwargs)

        return call

    api.run_query = streamed("run_query", api.run_query, "document")
    api.batch_get_documents = streamed("batch_get_documents", api.batch_get_documents, "found")
    api.get_document = single(api.get_document)
    try:
        yield counts
    finally:
        for name in ("run_query", "batch_get_documents", "get_document"):
            delattr(api, name)


def lose_a_commits_answer(
    db: Any, monkeypatch: pytest.MonkeyPatch, landing: Callable[[str], bool]
) -> list[str]:
    """Make the first commit of ``db`` that writes a document whose path ``landing``
    accepts land on the emulator and then lose its answer (UNAVAILABLE), as a connection
    that drops at the wrong moment does: the client library sends the commit again.
    Returns the paths of the write whose answer was lost (empty until it happens)."""
    transport = db._firestore_api._transport
    commit = transport._wrapped_methods[transport.commit]
    send = commit._target
    lost: list[str] = []

    def answer_lost_once(request: Any, *args: Any, **kwargs: Any) -> Any:
        answer = send(request, *args, **kwargs)  # it lands on the emulator
        paths = [w.update.name for w in request.writes if w.update.name]
        if not lost and any(landing(p) for p in paths):
            lost.extend(paths)
            raise gexc.ServiceUnavailable("the connection dropped before the answer came")
        return answer

    monkeypatch.setattr(commit, "_target", answer_lost_once)
    return lost


def write_documents(db: firestore.Client, writes: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Set every ``(path, document)`` in batches of 500, four batches at a time (seeding
    thousands of runs in seconds, in the shape the tracker writes them)."""

    def commit(group: Sequence[tuple[str, dict[str, Any]]]) -> None:
        batch = db.batch()
        for path, doc in group:
            batch.set(db.document(path), doc)
        batch.commit()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(commit, [writes[i : i + 500] for i in range(0, len(writes), 500)]))


class PrivateFirestore:
    """A Firestore emulator of a test module's own, for faults the session stack must never
    see (frozen, stopped, restarted from an older copy), started once for the module.

    Each test takes it with ``with private.fresh() as part``: running, answering, empty,
    with no saved copy in its stack dir, whatever the test before did to it. A test that
    stops it may start it again with :meth:`restart` (same address; it loads the newest
    copy saved in ``cfg.stack_dir``, as a restarted emulator does). Starting one costs
    seconds of JVM start-up; wiping it costs one request.
    """

    def __init__(self, stack_dir: Path) -> None:
        self.cfg = local.StackConfig(stack_dir=stack_dir, ports=local.free_ports())
        self.part = local.start_part(self.cfg, "firestore")

    @contextlib.contextmanager
    def fresh(self) -> Iterator[local.PartState]:
        """The emulator, healthy and empty, for one test (``with``); left running after it,
        resumed if the test froze it."""
        shutil.rmtree(self.cfg.stack_dir / local.FIRESTORE_DATA_DIR, ignore_errors=True)
        health = local.status_of(self.part)
        if health == "stopped":
            self.restart()
        elif health == "unhealthy":  # frozen by the test before
            local.resume_part(self.part)
            wait_for(lambda: local.status_of(self.part) == "healthy", what="the emulator back")
        url = (
            f"http://{self.part.address}/emulator/v1/projects/{LOCAL_CLOUD_PROJECT}"
            "/databases/(default)/documents"
        )
        requests.delete(url, timeout=GENEROUS_S).raise_for_status()
        try:
            yield self.part
        finally:
            with contextlib.suppress(ProcessLookupError):  # gone: the next test starts it
                local.resume_part(self.part)

    def restart(self) -> local.PartState:
        """Start it again at the same address after a test stopped it."""
        self.part = local.start_part(self.cfg, "firestore")
        return self.part

    def close(self) -> None:
        """Stop it (resumed first if frozen, so the group can take the signal)."""
        with contextlib.suppress(ProcessLookupError):
            local.resume_part(self.part)
        local.stop_part(self.part)


#: A git identity for commits in test repositories (a CI machine may have none configured).
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def git(repo: Path, *args: str) -> str:
    """Run real git in ``repo`` (with :data:`GIT_ENV`); its stripped stdout."""
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=GIT_ENV
    ).stdout.strip()


def git_repo(path: Path, files: Mapping[str, str | bytes]) -> Path:
    """A real git repository at ``path`` (branch main) with one commit of ``files`` (relative
    path -> text or bytes); tests then change its tree as they need."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    git(path, "add", ".")
    git(path, "commit", "-q", "--allow-empty", "-m", "one")
    return path


# --------------------------------------------------------------------------- datasets

#: The statuses the storage function leaves a file in once it is through with it.
PROFILED = ("done", "failed", "unsupported")


def dataset_store(
    settings: config.Settings,
    db: firestore.Client,
    gcs: storage.Client,
    cache_dir: Path,
    project: str,
) -> DatasetStore:
    """A dataset store of ``project`` on the test stack's bucket, caching in ``cache_dir``."""
    return DatasetStore(
        db, BlobStore(gcs, settings.bucket, project), LocalCache(cache_dir), project
    )


def add_profiled(store: DatasetStore, db: firestore.Client, name: str, path: Path) -> str:
    """Add ``path`` as a new version of dataset ``name``; once the storage function is through
    with every file of it (its status terminal, woken by Firestore's listener), the version."""
    version = store.add(name, path, lock=False).version
    for entry in store.manifest(name, version).values():
        wait_for_document(
            db,
            layout.file(store.project, entry.sha256),
            lambda doc: doc.get("status") in PROFILED,
            what=f"the storage function's status of {name} {version} {entry.path}",
        )
    return version


def version_field(db: firestore.Client, project: str, name: str, version: str, field: str) -> Any:
    """Field ``field`` of a dataset version once it is there (written by the add or the
    storage function, woken by Firestore's listener)."""
    return wait_for_document(
        db,
        layout.dataset_version(project, name, version),
        lambda doc: doc.get(field) is not None,
        what=f"{field} of {name} {version}",
    )[field]
