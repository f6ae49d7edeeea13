"""Shared CLI plumbing: consoles and the settings options every command accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from aletheia import config

console = Console()
err_console = Console(stderr=True)

StackDirOption = Annotated[
    Path | None,
    typer.Option(
        "--stack-dir",
        envvar="ALETHEIA_STACK_DIR",
        help="Where the local stack keeps its state, logs and data.",
        show_default=False,
    ),
]


def settings(**overrides: object) -> config.Settings:
    """Resolve settings with the command's explicit options on top."""
    return config.resolve(overrides)
