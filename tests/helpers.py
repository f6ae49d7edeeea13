"""Small helpers shared by tests (importable as ``helpers``).

Waits for asynchronous work (the storage function, the background writer)
end on an event or a condition, never on a fixed sleep, and their ceilings
are generous: a loaded CI machine may take minutes where a laptop takes
seconds, and a slow pass is not a failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from google.cloud import firestore

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
    not on a polling interval, so a busy machine only delays it.
    """
    matched: dict[str, Any] = {}
    done = threading.Event()

    def on_snapshot(snapshots: list[Any], _changes: Any, _read_time: Any) -> None:
        for snapshot in snapshots:
            data = snapshot.to_dict() if snapshot.exists else None
            if data is not None and condition(data):
                matched.update(data)
                done.set()

    watch = db.document(path).on_snapshot(on_snapshot)
    try:
        if not done.wait(timeout):
            pytest.fail(f"timed out after {timeout}s waiting for {what or path}")
    finally:
        watch.unsubscribe()
    return matched
