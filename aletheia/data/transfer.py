"""Progress reporting and a bounded worker pool for transfers.

Library code reports progress through a :class:`Reporter` (bytes per phase);
the CLI plugs in a rich progress bar with bytes/s and ETA, everything else
gets :class:`NullReporter`. Work on many files runs in a bounded thread
pool: Cloud Storage and hashing both release the GIL while they wait.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, TypeVar

from aletheia.data.hashing import OnBytes

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Concurrent uploads/downloads: enough to hide per-request latency without
#: exhausting the HTTP connection pool (10 per host by default).
TRANSFER_WORKERS = 8


class Reporter(Protocol):
    """Receives progress of named phases measured in bytes."""

    def phase(self, description: str, total: int) -> AbstractContextManager[OnBytes]:
        """Context manager yielding a thread-safe ``advance(nbytes)`` callback."""
        ...


class NullReporter:
    """Reports nothing."""

    @contextmanager
    def phase(self, description: str, total: int) -> Iterator[OnBytes]:
        """Yield a callback that ignores its argument."""
        yield lambda _n: None


def run_parallel(
    fn: Callable[[_T], _R], items: Sequence[_T] | Iterable[_T], workers: int = TRANSFER_WORKERS
) -> list[_R]:
    """``[fn(x) for x in items]`` on a bounded pool; the first error cancels the rest."""
    items = list(items)
    if len(items) <= 1 or workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = [pool.submit(fn, x) for x in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in futures:
            if future in done and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        return [f.result() for f in futures]
