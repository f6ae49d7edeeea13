"""How this process is ending, for the runs still open when it does.

A run used as a context manager sees the exception that ends it. A run
opened with a bare ``start_run()`` is ended by an ``atexit`` hook, which on
its own cannot tell a clean exit from a crash: Python has already printed
and dropped the exception by then. :func:`install` (called when the first
run starts) keeps what the hook needs:

* an uncaught exception of the main thread, ``KeyboardInterrupt``
  included, through :data:`sys.excepthook` (when the interpreter calls it,
  not code that prints an error it survives) — chained, so a hook installed
  before (IPython's, a crash reporter's) still runs and Python's own
  traceback is still printed. An uncaught exception of another thread does
  not end the process and is not recorded. Should a hook installed later
  replace ours without chaining, the exception is read at exit from
  ``sys.last_value``, which Python sets before calling any hook;
* the exit code of ``sys.exit(code)``: :func:`sys.exit` raises a
  :class:`SystemExit` whose ``code`` notices being read by the interpreter
  itself (no Python frame left on the stack) — which happens only when the
  exception ends the process, never when a caller catches it. A bare
  ``raise SystemExit(n)`` does not go through :func:`sys.exit` and is not
  seen.

Interactive sessions (the REPL, ``python -i``) survive uncaught exceptions,
so there nothing is recorded.

Ending runs at exit talks to Firestore, and that can cost a Ctrl-C'd
process its exit status: :func:`exit_as_interrupted` restores it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn

_lock = threading.Lock()
_installed = False
#: The exception ending the process, once the interpreter has let it through.
_ending: BaseException | None = None
_our_hook: Callable[..., Any] | None = None


def install() -> None:
    """Install the hooks once per process (idempotent; chains what was there)."""
    global _installed, _our_hook
    with _lock:
        if _installed:
            return
        _installed = True
        previous_hook = sys.excepthook
        previous_exit = sys.exit

        def excepthook(
            exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
        ) -> Any:
            # The interpreter calls the hook with no Python frame left, and only for an
            # exception that ends the main thread; code printing an error it survives
            # calls it from a frame of its own.
            if _called_by_interpreter() and not _interactive():
                _record(exc.with_traceback(tb) if tb is not None else exc)
            return previous_hook(exc_type, exc, tb)

        def exit(status: str | int | None = None) -> NoReturn:
            try:
                previous_exit(status)
            except SystemExit as exc:
                raise _ExitRequest(*exc.args).with_traceback(exc.__traceback__) from None
            raise _ExitRequest(status)  # a replaced sys.exit that did not exit

        sys.excepthook = excepthook
        sys.exit = exit
        _our_hook = excepthook


def ending() -> BaseException | None:
    """The exception that is ending the process, if Python let one through."""
    if _ending is not None or not _installed or sys.excepthook is _our_hook:
        return _ending
    # Our hook was replaced. sys.last_value is also set by whatever survives an error
    # (interactive shells, IPython, pytest), so it is read only once the main thread is
    # gone — the process is exiting — and never in an interactive session.
    if threading.main_thread().is_alive() or _interactive() or "IPython" in sys.modules:
        return None
    last = getattr(sys, "last_value", None)
    return last if isinstance(last, BaseException) else None


def exit_as_interrupted() -> None:
    """End the process by SIGINT, as Python does after an uncaught ``KeyboardInterrupt``.

    CPython ends such a process by SIGINT (status 130 in a shell), but it keeps
    that in a flag that importing a Cython-compiled module resets; gRPC's error
    path imports some the first time a call fails, which ending a run at exit
    can be, and the process then exits 1. Called after the runs are ended: the
    output streams and logging are flushed first, since nothing runs after this.
    """
    if os.name != "posix" or not isinstance(ending(), KeyboardInterrupt):
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed or replaced
            stream.flush()
    logging.shutdown()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def is_clean_exit(exc: BaseException | None) -> bool:
    """True for no exception, or ``SystemExit`` with exit code 0."""
    if exc is None:
        return True
    if not isinstance(exc, SystemExit):
        return False
    code = exc.args[0] if exc.args else None
    # As the interpreter reads it: None and 0 are success, an int is the code, text is 1.
    return code is None or (isinstance(code, int) and code == 0)


def describe(exc: BaseException, limit: int | None = None) -> str:
    """The traceback text of ``exc`` (its last ``limit`` characters), as Python prints it."""
    kind = SystemExit if isinstance(exc, SystemExit) else type(exc)
    text = "".join(traceback.TracebackException(kind, exc, exc.__traceback__).format())
    return text if limit is None else text[-limit:]


def _record(exc: BaseException) -> None:
    global _ending
    _ending = exc


def _called_by_interpreter() -> bool:
    """True when the caller of the calling function is the interpreter, not Python code."""
    try:
        sys._getframe(2)
    except ValueError:
        return True
    return False


def _interactive() -> bool:
    return hasattr(sys, "ps1") or bool(sys.flags.interactive)


class _ExitRequest(SystemExit):
    """What the wrapped :func:`sys.exit` raises: a ``SystemExit`` that sees itself end the process.

    When the exception leaves the program, the interpreter reads ``code``
    to get the exit status, from C, with no Python frame left; any other
    reader (an ``except SystemExit`` that carries on) is Python code.
    """

    @property  # type: ignore[override]
    def code(self) -> Any:
        if _called_by_interpreter():  # this is the process's exit
            _record(SystemExit(*self.args).with_traceback(self.__traceback__))
        return _code_of(self)

    @code.setter
    def code(self, value: Any) -> None:
        _set_code(self, value)


# SystemExit's own slot (a member descriptor), which the property above shadows.
_code_of: Callable[[SystemExit], Any] = vars(SystemExit)["code"].__get__
_set_code: Callable[[SystemExit, Any], None] = vars(SystemExit)["code"].__set__
