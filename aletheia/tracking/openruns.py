"""The runs this process has open, and how each ends when the process does.

A run registers here when it starts and leaves when it ends. Runs still
open at interpreter exit (no ``with``) are ended with the status the
process earned (:func:`ending_of` of what :mod:`aletheia.tracking.exithooks`
saw): a clean exit finishes them, an uncaught exception or a failing exit
code fails them, ``KeyboardInterrupt`` interrupts them.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from typing import Protocol

from aletheia.tracking import exithooks
from aletheia.tracking.runmodel import FAILED, FINISHED, INTERRUPTED

log = logging.getLogger(__name__)

#: Longest traceback kept in a failed run's ``error`` field (its tail).
MAX_ERROR_CHARS = 32 * 1024


class OpenRun(Protocol):
    """What this module needs of a run."""

    id: str

    @property
    def is_active(self) -> bool: ...

    def finish(self, status: str = FINISHED, *, error: str | None = None) -> bool: ...


# Runs still open at interpreter exit are flushed and ended.
_ACTIVE: weakref.WeakSet[OpenRun] = weakref.WeakSet()
# Start order of runs in this process, for ``active_runs`` (dead and ended ones are skipped).
_OPEN_ORDER: list[weakref.ref[OpenRun]] = []


def opened(run: OpenRun) -> None:
    """``run`` has started: end it at exit if nobody does before."""
    exithooks.install()  # so that the exit hook knows how the process ended
    _ACTIVE.add(run)
    _OPEN_ORDER.append(weakref.ref(run))


def closed(run: OpenRun) -> None:
    """``run`` has ended."""
    _ACTIVE.discard(run)


def active_runs() -> list[OpenRun]:
    """Runs of this process that have not ended, most recently started first.

    Integrations (the MLflow plugin) use it to nest their runs under the
    aletheia run the user code is inside.
    """
    alive = [r for r in (ref() for ref in _OPEN_ORDER) if r is not None and r.is_active]
    _OPEN_ORDER[:] = [weakref.ref(r) for r in alive]
    return alive[::-1]


def ending_of(exc: BaseException | None) -> tuple[str, str | None]:
    """Status and ``error`` of a run ended by ``exc`` (``None``: a clean end).

    A clean ``sys.exit()`` finishes; an exception or a non-zero exit code
    fails, ``KeyboardInterrupt`` interrupts; the traceback goes to ``error``.
    """
    if exc is None or exithooks.is_clean_exit(exc):
        return FINISHED, None
    status = FAILED if isinstance(exc, Exception | SystemExit) else INTERRUPTED
    return status, exithooks.describe(exc, MAX_ERROR_CHARS)


@atexit.register
def _finish_open_runs() -> None:
    # Inside `with`, a run sees its exception; here the hooks say how the process ended.
    status, error = ending_of(exithooks.ending())
    open_runs = list(_ACTIVE)
    for run in open_runs:
        try:
            run.finish(status, error=error)
        except Exception as exc:  # never turn a clean exit into a crash
            log.warning("aletheia: could not end run %s at exit: %s", run.id, exc)
    if open_runs:
        exithooks.exit_as_interrupted()  # Ctrl-C still exits as Ctrl-C (130)
