"""The add's wait for its hashing and upload futures: linear in the number of files.

Waiting with ``concurrent.futures.wait(left, FIRST_COMPLETED)`` in a loop takes
every remaining future's lock at every completion: N²/2 lock rounds for N
files (10,000 files: 50 million), which made the CPU of adding many small
files grow with their square. The count of lock acquisitions is the measure.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from aletheia.data import addflow

N = 1000


class CountingLock:
    """A re-entrant lock that counts how often it is taken."""

    taken = 0

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        CountingLock.taken += 1
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    # What threading.Condition uses when the lock has them (an RLock's own).
    def _is_owned(self) -> bool:
        return bool(self._lock._is_owned())  # type: ignore[attr-defined]

    def _release_save(self) -> object:
        return self._lock._release_save()  # type: ignore[attr-defined]

    def _acquire_restore(self, state: object) -> None:
        CountingLock.taken += 1
        self._lock._acquire_restore(state)  # type: ignore[attr-defined]

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()


def counted_futures(n: int) -> list[Future]:
    futures: list[Future] = []
    for _ in range(n):
        fut: Future = Future()
        fut._condition = threading.Condition(CountingLock())  # type: ignore[attr-defined]
        futures.append(fut)
    return futures


def test_draining_futures_that_finish_one_by_one_takes_linear_lock_rounds() -> None:
    futures = counted_futures(N)
    order = {fut: i for i, fut in enumerate(futures)}
    seen: list[int] = []

    def on_done(fut: Future) -> None:
        # Each finished file lets the next one finish: the worst case for a rescanning wait.
        i = order[fut]
        seen.append(i)
        if i + 1 < N:
            futures[i + 1].set_result(i + 1)

    futures[0].set_result(0)
    CountingLock.taken = 0
    addflow._drain(dict.fromkeys(futures), on_done, [])
    assert seen == list(range(N))  # every future handled once, in completion order
    assert CountingLock.taken <= 10 * N  # a rescan per completion: ~N²/2 = 500,000


def test_the_first_error_is_raised_and_the_pools_are_stopped() -> None:
    futures = counted_futures(3)
    futures[0].set_result(0)
    futures[1].set_exception(OSError("disk gone"))
    futures[2].set_result(2)

    class Pool:
        stopped = False

        def shutdown(self, wait: bool, cancel_futures: bool) -> None:
            Pool.stopped = cancel_futures and not wait

    with pytest.raises(OSError, match="disk gone"):
        addflow._drain(dict.fromkeys(futures), lambda _f: None, [Pool()])
    assert Pool.stopped
