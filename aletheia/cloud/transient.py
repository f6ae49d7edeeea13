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


#: Each attempt of a bounded call gets this share of its deadline, so a call that hangs
#: (a frozen server) is still tried again within the deadline rather than once.
_ATTEMPT_SHARE = 3


def bounded(deadline_s: float, *, idempotent: bool = True) -> dict[str, Any]:
    """``retry=`` and ``timeout=`` keyword arguments that give up within ``deadline_s``.

    A per-call ``timeout`` alone does not bound a Google client call: it is
    the deadline of one *attempt*, and the library's default retry (e.g.
    300 s for Firestore reads, with ``DEADLINE_EXCEEDED`` retried) starts
    another attempt with the same timeout until its own deadline passes.
    Here the retry stops at ``deadline_s`` and each attempt gets a third of
    it, so the call returns or raises within 4/3 of ``deadline_s``; what is
    retried is what :func:`is_transient` says a retry can cure. A call that
    ran out of time raises ``RetryError`` (itself transient).

    A call that is not ``idempotent`` (a ``create``: an attempt that timed
    out may have been applied, and its retry would then fail as "exists") is
    made once, with the whole deadline.
    """
    from google.api_core import retry as gretry

    if not idempotent:
        return {"retry": None, "timeout": deadline_s}
    attempt = max(1.0, deadline_s / _ATTEMPT_SHARE)
    policy = gretry.Retry(
        predicate=is_transient, initial=0.2, maximum=2.0, multiplier=2.0, timeout=deadline_s
    )
    return {"retry": policy, "timeout": attempt}
