"""Shared CLI plumbing: consoles and the settings options every command accepts."""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from aletheia.cloud import config
from aletheia.cloud.lazy import gexc
from aletheia.errors import AccessDeniedError, AletheiaError

# Soft wrap: a line is never broken by rich at its 80-column default where output is not a
# terminal, so a path or a URI in a message stays whole for whoever copies it from a log or
# reads it in a pipe (a terminal still wraps it on screen). Tables and progress bars lay out
# the same either way.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

StackDirOption = Annotated[
    Path | None,
    typer.Option(
        "--stack-dir",
        envvar="ALETHEIA_STACK_DIR",
        help="Where the local stack keeps its state, logs and data.",
        show_default=False,
    ),
]


_F = TypeVar("_F", bound=Callable[..., Any])


def print_error(exc: AletheiaError) -> None:
    """One red line with what went wrong, one yellow line with what to do."""
    err_console.print(f"[bold red]error:[/] {exc.message}")
    if exc.hint:
        err_console.print(f"[yellow]hint:[/] {exc.hint}")


def exit_on_error(func: _F) -> _F:
    """Library errors become :func:`print_error` and their exit code, never a traceback.

    Applied to commands so the behaviour holds when the app is invoked directly
    (tests, embedding), not only through :func:`aletheia.cli.main`.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AletheiaError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from exc
        except Exception as exc:
            denied = as_access_denied(exc)
            if denied is None:
                raise
            print_error(denied)
            raise typer.Exit(denied.exit_code) from exc

    return wrapper  # type: ignore[return-value]


def as_access_denied(exc: BaseException) -> AccessDeniedError | None:
    """:func:`access_denied` for a refusal by Firestore's rules, ``None`` for any other error."""
    # A module never imported raised nothing: asking it would import gRPC on every exit.
    exceptions = sys.modules.get("google.api_core.exceptions")
    if exceptions is None or not isinstance(exc, exceptions.PermissionDenied):
        return None
    return access_denied(exc)


def access_denied(exc: gexc.PermissionDenied) -> AccessDeniedError:
    """What a refusal by Firestore's rules means for someone at the command line."""
    return AccessDeniedError(
        f"Firestore refused the request: {exc.message.strip().splitlines()[0] or 'denied'}",
        "you act as the Firebase user of `aletheia auth whoami`; ask a project owner for "
        "a role (`aletheia project members add`), or use server credentials "
        "(ALETHEIA_IDENTITY=server)",
    )


def settings(**overrides: object) -> config.Settings:
    """Resolve settings with the command's explicit options on top.

    A :class:`~aletheia.cloud.config.ConfigWarning` becomes one yellow line (the
    library reports each once per process), not Python's file:line format.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", config.ConfigWarning)
        resolved = config.resolve(overrides)
    for warning in caught:
        if issubclass(warning.category, config.ConfigWarning):
            err_console.print(f"[yellow]warning:[/] {warning.message}")
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return resolved
