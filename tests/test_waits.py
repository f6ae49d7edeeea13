"""The tests' own waits end on the event they wait for, even where a listener dies."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud.firestore_v1.document import DocumentReference
from google.cloud.firestore_v1.watch import Watch

from aletheia.cloud import config

from helpers import wait_for_document


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
