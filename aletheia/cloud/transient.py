"""Which cloud errors a retry can cure: one list for Firestore, Cloud Storage and the function.

Transient: the service or the network failed (unavailable, overloaded,
timed out, aborted by contention, or unreachable). Everything else — a
refused request (invalid argument, a document over 1 MiB, permission
denied, not found, a value the client library cannot encode) — fails the
same way on every attempt: retrying it only hammers the service and hides
the real cause. The tracker's store, the blob store and the storage
function all decide with :func:`is_transient`, so a failure is retried, or
reported as permanent, the same way everywhere.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aletheia.cloud.lazy import gexc, requests
from aletheia.errors import BackendUnavailableError

if TYPE_CHECKING:
    #: Error types worth retrying (see :func:`is_transient` for the exceptions within them).
    #: Built on first use (:func:`transient_errors`): naming them imports gRPC.
    TRANSIENT: tuple[type[BaseException], ...]


@functools.cache
def transient_errors() -> tuple[type[BaseException], ...]:
    """Error types worth retrying: the same tuple object on every call."""
    return (
        gexc.ServiceUnavailable,  # 503 / UNAVAILABLE
        gexc.DeadlineExceeded,  # DEADLINE_EXCEEDED
        gexc.InternalServerError,  # 500 / INTERNAL
        gexc.BadGateway,  # 502
        gexc.GatewayTimeout,  # 504
        gexc.TooManyRequests,  # 429
        gexc.ResourceExhausted,  # RESOURCE_EXHAUSTED: quota, overload
        gexc.Aborted,  # ABORTED: transaction contention
        gexc.Unknown,  # UNKNOWN: a dropped stream
        gexc.RetryError,  # a library retry that ran out of time
        BackendUnavailableError,  # our probe found no emulator/service
        requests.ConnectionError,
        requests.Timeout,
        ConnectionError,
        TimeoutError,
    )


def __getattr__(name: str) -> object:
    """``TRANSIENT`` is :func:`transient_errors`, built when first read (PEP 562)."""
    if name == "TRANSIENT":
        return transient_errors()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# RESOURCE_EXHAUSTED also says "this request is bigger than the server accepts" (the
# emulator's 4 MiB gRPC limit): the same bytes will never fit.
_TOO_LARGE = ("exceeds maximum size", "larger than max", "message too large")


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry may cure; False for a request that will always be refused."""
    if isinstance(exc, gexc.RetryError):
        cause = exc.cause
        return cause is None or is_transient(cause)
    if isinstance(exc, gexc.TooManyRequests):  # ResourceExhausted is one
        text = str(exc).lower()
        return not any(marker in text for marker in _TOO_LARGE)
    return isinstance(exc, transient_errors())


#: The least time an attempt is given, however close to its deadline it starts.
_MIN_ATTEMPT_S = 0.5


class _UntilDeadline:
    """A google.api_core timeout: each attempt gets the time left until the call's deadline.

    api_core's own ``TimeToDeadlineTimeout`` (what a plain number becomes)
    gives an attempt that starts less than a second before the deadline the
    whole timeout again; this one never gives more than what is left (but at
    least :data:`_MIN_ATTEMPT_S`). Applied by the library once per call, so
    the clock starts when the call does.
    """

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        started = time.monotonic()

        @functools.wraps(func)
        def attempt(*args: Any, **kwargs: Any) -> Any:
            left = self.deadline_s - (time.monotonic() - started)
            kwargs["timeout"] = max(_MIN_ATTEMPT_S, left)
            return func(*args, **kwargs)

        return attempt


def bounded(deadline_s: float, *, idempotent: bool = True) -> dict[str, Any]:
    """``retry=`` and ``timeout=`` keyword arguments that give up within ``deadline_s``.

    A per-call ``timeout`` alone does not bound a Google client call: it is
    the deadline of one *attempt*, and the library's default retry (e.g.
    300 s for Firestore reads, with ``DEADLINE_EXCEEDED`` retried) starts
    another attempt with the same timeout until its own deadline passes.
    Here the retries stop at ``deadline_s`` and each attempt gets what is
    left of it: a server that is slow but alive (a fresh emulator's first
    call on a loaded machine) has the whole deadline to answer, a refused
    connection is tried again until the deadline. What is retried is what
    :func:`is_transient` says a retry can cure; a call that ran out of time
    raises ``RetryError`` or ``DeadlineExceeded`` (both transient).

    A call that is not ``idempotent`` (a ``create`` whose "exists" means
    somebody else's document: an attempt that timed out may have been applied,
    and its retry would then fail as "exists") is made once, with the whole
    deadline. Made once, it also fails at once while gRPC backs off from a
    failed connect, though the server may answer again by then. A create whose
    "exists" the caller takes as "it is there" is idempotent.
    """
    from google.api_core import retry as gretry

    if not idempotent:
        return {"retry": None, "timeout": deadline_s}
    policy = gretry.Retry(
        predicate=is_transient, initial=0.2, maximum=2.0, multiplier=2.0, timeout=deadline_s
    )
    return {"retry": policy, "timeout": _UntilDeadline(deadline_s)}
