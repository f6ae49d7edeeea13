"""Named wall-time accumulators, so a slow ``datasets add`` says where its time went.

Thread-safe: the hashing and upload workers add to the same names at once,
so a phase measured across workers is *thread* time (it can exceed the wall
time of the stage it belongs to when workers overlap).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimes:
    """Seconds spent per named phase, summed over every thread that reported it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` towards ``name``."""
        with self._lock:
            self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Count the time the ``with`` body takes (also when it raises) towards ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def snapshot(self) -> dict[str, float]:
        """A copy of the totals, e.g. to diff before/after an operation."""
        with self._lock:
            return dict(self._seconds)

    @staticmethod
    def since(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """``after - before`` per name, rounded to milliseconds; names with no time left out."""
        out = {k: round(v - before.get(k, 0.0), 3) for k, v in after.items()}
        return {k: v for k, v in out.items() if v > 0}
