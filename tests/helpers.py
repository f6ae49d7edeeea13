"""Small helpers shared by tests (importable as ``helpers``)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def wait_for(
    probe: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what or probe}")


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
