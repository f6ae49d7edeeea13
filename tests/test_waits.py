"""The tests' own waits end on the event they wait for, even where a listener dies, and the
wipe between tests waits for the storage function to finish what it is writing."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest
from conftest import wipe_stack
from google.cloud import storage
from google.cloud.firestore_v1.document import DocumentReference
from google.cloud.firestore_v1.watch import Watch
from test_function_profiling import upload

from aletheia.cloud import config
from aletheia.devstack import local

from helpers import GENEROUS_S, bridge_counters, wait_for, wait_for_document


def test_a_wait_outlives_a_listener_whose_stream_was_cut(
    stack: config.Settings, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under load the emulator may cut a listener's stream (RST_STREAM, CANCELLED); the
    # client closes that listener for good, and a wait on it alone never woke again.
    path = "waits/cut"
    listen = DocumentReference.on_snapshot
    listeners: list[Watch] = []

    def first_listener_cut(self: DocumentReference, callback: Any) -> Watch:
        watch = listen(self, callback)
        listeners.append(watch)
        if len(listeners) == 1:
            watch.close()  # what the client does once the stream is gone
            db.document(path).set({"state": "done"})  # lands where no listener hears it
        return watch

    monkeypatch.setattr(DocumentReference, "on_snapshot", first_listener_cut)
    found = wait_for_document(db, path, lambda d: d.get("state") == "done")
    assert found == {"state": "done"}
    assert len(listeners) == 2


def test_a_wipe_waits_for_the_event_the_function_is_working_on(
    stack: config.Settings, db: Any, gcs: storage.Client
) -> None:
    # The wipe between tests used to run while the function was still working on the last
    # test's upload: what it wrote at the end (a file's record, a profile's blob) landed
    # after the wipe, in the next test's stack. The function is held still mid-event here,
    # so the wipe must still be waiting for it whenever it is looked at.
    rows = "".join(f"{i},{i * 0.5},name{i % 97}\n" for i in range(300_000))  # seconds of work
    upload(gcs, stack, f"id,x,name\n{rows}".encode(), "big.csv")
    wait_for(lambda: bridge_counters(stack)["in_flight"] > 0, what="the upload's event")
    function = _function_process_group(stack)
    os.killpg(function, signal.SIGSTOP)
    try:
        wipe = threading.Thread(target=wipe_stack, args=(stack, gcs))
        wipe.start()
        wipe.join(timeout=3.0)
        assert wipe.is_alive(), "the wipe ran while the function was mid-event"
    finally:
        os.killpg(function, signal.SIGCONT)
    wipe.join(timeout=GENEROUS_S)
    assert not wipe.is_alive()
    assert bridge_counters(stack)["in_flight"] == 0
    assert [b.name for b in gcs.bucket(stack.bucket).list_blobs()] == []
    assert [c.id for c in db.collections()] == []


def _function_process_group(settings: config.Settings) -> int:
    state = local.load_state(settings.stack_dir)
    assert state is not None
    return state.parts["function"].pid
