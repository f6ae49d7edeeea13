"""An experiment started while Firestore cannot be reached starts offline within its deadline.

A per-call ``timeout`` does not bound a Google client call: the library's
default retry (300 s for reads, 60 s for commits) starts attempt after
attempt. Every Firestore call from ``Metastore(...)`` through ``exper()``,
``start_run()``, logging and ``finish()`` gives up within the configured
start deadline (``direct.CREATE_TIMEOUT_S``), and the run lands in its
journal. Firestore is a real emulator, frozen (SIGSTOP: it accepts
connections and answers nothing) or stopped (nothing listens any more),
reached with server credentials and as a signed-in user.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_auth import as_user

from aletheia.cloud import config
from aletheia.devstack import local
from aletheia.tracking import direct, journal, ownership
from aletheia.tracking.metastore import Experiment, Metastore
from aletheia.tracking.runmodel import RunRef

from helpers import PrivateFirestore

DEADLINE_S = 2.0
#: Only a start that waits for the library's own retry deadline (300 s) gets here.
CEILING_S = 150.0


@dataclass
class Attempts:
    """Every RPC attempt a client made: the logical call it belongs to, when, its timeout."""

    rows: list[tuple[int, str, float, Any]] = field(default_factory=list)
    #: Each logical call's method and the ``retry=`` it was given (absent: the library's own).
    retries: list[tuple[str, Any]] = field(default_factory=list)
    _calls: itertools.count[int] = field(default_factory=itertools.count)
    _current: threading.local = field(default_factory=threading.local)

    def spans(self) -> dict[int, float]:
        """Seconds from a call's first attempt to its last attempt's start, per call."""
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for call, _name, at, _timeout in self.rows:
            first.setdefault(call, at)
            last[call] = at
        return {call: last[call] - first[call] for call in first}


@contextmanager
def record_attempts(db: Any, attempts: Attempts) -> Iterator[None]:
    """Record each attempt of each RPC ``db`` makes (the calls still reach the emulator).

    The client's API methods mark which logical call is under way; the
    transport's raw stubs, below the library's retry, record every attempt.
    """
    api = db._firestore_api
    wrapped = api._transport._wrapped_methods
    names = {gapic: name for name, gapic in _gapic_by_name(api).items()}
    saved_api = {name: getattr(api, name) for name in names.values()}
    saved_targets = {gapic: gapic._target for gapic in wrapped.values()}

    def call_of(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts._current.call = next(attempts._calls)
            attempts.retries.append((name, kwargs.get("retry", "the library's default")))
            return method(*args, **kwargs)

        return call

    def attempt_of(name: str, target: Callable[..., Any]) -> Callable[..., Any]:
        def attempt(*args: Any, **kwargs: Any) -> Any:
            row = (getattr(attempts._current, "call", -1), name, time.monotonic())
            attempts.rows.append((*row, kwargs.get("timeout")))
            return target(*args, **kwargs)

        return attempt

    for name in saved_api:
        setattr(api, name, call_of(name, saved_api[name]))
    for gapic, target in saved_targets.items():
        gapic._target = attempt_of(names.get(gapic, "?"), target)
    try:
        yield
    finally:
        for name in saved_api:
            delattr(api, name)
        for gapic, target in saved_targets.items():
            gapic._target = target


def _gapic_by_name(api: Any) -> dict[str, Any]:
    transport = api._transport
    out = {}
    for name in ("batch_get_documents", "commit", "get_document", "run_query", "batch_write"):
        out[name] = transport._wrapped_methods[getattr(transport, name)]
    return out


def _in_thread(fn: Callable[[], Any]) -> Any:
    """``fn()``, failing the test if it is still waiting after :data:`CEILING_S`."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(CEILING_S)
    assert not worker.is_alive(), f"still waiting for Firestore after {CEILING_S} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def _check(attempts: Attempts) -> None:
    """Each attempt had at most the deadline; each call stopped retrying at the deadline."""
    assert attempts.rows, "no Firestore call was made"
    timeouts = [t for *_, t in attempts.rows]
    assert all(t is not None and float(t) <= DEADLINE_S for t in timeouts), attempts.rows
    # Each call was made once, or retried under a policy that stops at the deadline: never
    # the library's own (60 s for commits, 300 s for reads).
    for name, retry in attempts.retries:
        assert retry is None or getattr(retry, "timeout", None) == DEADLINE_S, (name, retry)
    # And so it went: no call's attempts spread over anything near the library's deadlines
    # (a loaded machine may start an attempt late, never by a minute).
    spans = attempts.spans()
    assert max(spans.values()) <= 10 * DEADLINE_S, (spans, attempts.rows)


@pytest.mark.parametrize("fault", ["frozen", "stopped"])
@pytest.mark.parametrize("identity", ["server", "user"])
def test_start_against_unreachable_firestore_goes_offline_within_its_deadline(
    stack: config.Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    identity: str,
    private_firestore: PrivateFirestore,
) -> None:
    with private_firestore.fresh() as part:  # the session stack's Firestore is never touched
        if identity == "user":
            email = f"ana-{fault}-{uuid.uuid4().hex[:8]}@example.com"
            as_user(stack, tmp_path, email)  # signed up in the session's Auth emulator
            base = {"identity": "user", "user_credentials": str(tmp_path / f"{email}.json")}
        else:
            base = {"identity": "server"}
        settings = config.resolve(
            {
                **base,
                "firestore_emulator_host": part.address,
                "cache_dir": str(tmp_path / "cache"),
            }
        )
        online = Metastore("offline", settings=settings, final_retry_s=1.0, sync_on_start=False)
        exper = online.exper("train", git_policy="off")
        assert exper.online
        # A second process's client, built (and its emulator probed) while Firestore answered.
        later = Metastore("offline", settings=settings, final_retry_s=1.0, sync_on_start=False)
        later.store.commit_timeout_s = 1.0
        online.store.commit_timeout_s = 1.0
        # Short from here on (a fresh emulator's first write takes seconds).
        monkeypatch.setattr(direct, "CREATE_TIMEOUT_S", DEADLINE_S)
        attempts = Attempts()
        with record_attempts(later.db, attempts), record_attempts(online.db, attempts):
            if fault == "frozen":
                local.suspend_part(part)
            else:
                local.stop_part(part)

            # An online experiment numbers its next run: that read gives up in time.
            first = _in_thread(lambda: exper.start_run(params={"lr": 0.1}))
            first.add_metric("loss", 1.0)
            assert not _in_thread(first.finish)  # ended offline

            # The project check of a new experiment object gives up in time too.
            offline: Experiment = _in_thread(lambda: later.exper("train", git_policy="off"))
            assert not offline.online
            run = _in_thread(lambda: offline.start_run(params={"lr": 0.2}))
            for i in range(10):
                run.add_metric("loss", float(i))
            assert not _in_thread(run.finish)
        _check(attempts)
        for started, points in ((first, 1), (run, 10)):
            state = journal.read(started.journal.path)
            assert state.point_count == points and not state.synced
            assert state.merged_fields()["status"] == "finished"


def test_start_with_the_whole_local_stack_down_goes_offline(
    stack: config.Settings, tmp_path: Path
) -> None:
    """Nothing answers, Cloud Storage included: the run still starts, without its code blobs."""
    settings = config.resolve(
        {
            "identity": "server",
            "firestore_emulator_host": f"127.0.0.1:{local.free_port()}",  # nothing listens
            "storage_emulator_host": f"http://127.0.0.1:{local.free_port()}",
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    ms = Metastore("offline", settings=settings, final_retry_s=1.0, sync_on_start=False)
    exper = ms.exper("train", git_policy="off")
    assert not exper.online
    run = exper.start_run(params={"lr": 0.1})
    run.add_metric("loss", 1.0)
    assert not run.finish()
    state = journal.read(run.journal.path)
    assert state.point_count == 1 and state.merged_fields()["params"] == {"lr": 0.1}


# A signed-in user's run is left out: the restarted emulator lost the project, which the
# rules then require for the run.
@pytest.mark.parametrize(
    ("identity", "first"),
    [("server", "new experiment"), ("user", "new experiment"), ("server", "run")],
)
def test_a_start_just_after_firestore_came_back_is_online(
    stack: config.Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    identity: str,
    first: str,
    private_firestore: PrivateFirestore,
) -> None:
    # gRPC shares one connection per address between the clients of a process, and after
    # failed connects it waits (backing off) before it tries again, failing every call
    # meanwhile without sending it. A call made once failed so, at once, though Firestore
    # answered again, and the start went offline with its whole deadline left: a signed-in
    # user's new experiment (its start creates the project first), and a run of an
    # experiment made before the outage (its start creates the run document first; a
    # numbered run then got a time id).
    with private_firestore.fresh() as part:
        if identity == "user":
            email = f"ana-back-{uuid.uuid4().hex[:8]}@example.com"
            as_user(stack, tmp_path, email)
            base = {"identity": "user", "user_credentials": str(tmp_path / f"{email}.json")}
        else:
            base = {"identity": "server"}
        settings = config.resolve(
            {**base, "firestore_emulator_host": part.address, "cache_dir": str(tmp_path / "c")}
        )
        ms = Metastore("back", settings=settings, final_retry_s=1.0, sync_on_start=False)
        before = ms.exper("train", git_policy="off") if first == "run" else None
        assert ms.db is not None  # built (and its emulator probed) while Firestore answers
        local.stop_part(part)
        # A start that finds nothing listening, as a script going on through an outage would.
        monkeypatch.setattr(direct, "CREATE_TIMEOUT_S", 8.0)
        assert not ms.exper("during", git_policy="off").online
        private_firestore.restart()
        monkeypatch.undo()  # the default start deadline again

        if before is not None:
            run = before.start_run(params={"lr": 0.1})
            assert run.id == "1" and run.writer.claimed
        else:
            back = Metastore("back", settings=settings, final_retry_s=1.0, sync_on_start=False)
            exper = back.exper("train", git_policy="off")
            assert exper.online
            run = exper.start_run(params={"lr": 0.1})
        assert run.finish()


def test_a_retried_create_of_a_start_that_landed_is_its_own(
    stack: config.Settings, db: Any, tmp_path: Path
) -> None:
    """The retry of a run's create whose first attempt landed finds the start's own token."""
    ms = Metastore("retried", settings=stack, sync_on_start=False)
    exper = ms.exper("train", git_policy="off")
    ref = RunRef("retried", "train", "r1")
    mine = {ownership.OWNER: "token-a", "status": "running"}
    ms.direct.create_run(ref, mine)
    ms.direct.create_run(ref, mine)  # as the retry of an attempt that landed sees it
    with pytest.raises(direct.RunExistsError):
        ms.direct.create_run(ref, {**mine, ownership.OWNER: "token-b"})
    with pytest.raises(direct.RunExistsError):
        ms.direct.create_run(ref, {"status": "running"})  # no token: nothing to tell by
    assert exper.online and db.document(ref.path).get().to_dict() == mine


def test_a_run_with_no_local_stack_running_is_offline_not_refused(
    stack_state: local.StackState,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # "No emulator is configured and no local stack is running" is an AletheiaError, and
    # the writer took it for its project's refusal: it stopped sending for good, told the
    # user to make the project theirs, and the end said Firestore had refused the run.
    for name in stack_state.env:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALETHEIA_STACK_DIR", str(tmp_path / "no-stack"))
    settings = config.resolve({"identity": "server", "cache_dir": str(tmp_path / "cache")})
    ms = Metastore("nostack", settings=settings, final_retry_s=1.0, sync_on_start=False)
    with caplog.at_level("WARNING"):
        run = ms.exper("train", git_policy="off").start_run(params={"lr": 0.1})
        run.add_metric("loss", 1.0)
        assert not run.finish()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "unreachable" in said and "ended offline" in said
    assert "was not written" not in said and "refused" not in said
    assert not run.writer.blocked
    state = journal.read(run.journal.path)
    assert state.point_count == 1 and not state.synced
