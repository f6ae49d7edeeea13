"""``aletheia sync``: send what runs logged offline, and settle runs whose process died."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from aletheia import sync as sync_mod
from aletheia.cli._common import console, settings


def sync(
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Only this aletheia project (default: all)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Resend every journal, even settled ones.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Replay local run journals into Firestore (exactly once; safe to run again)."""
    results = sync_mod.sync_all(settings(), project=project, force=force)
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in results]))
        return
    if not results:
        console.print("no run journals on this machine: nothing to sync")
        return
    table = Table("project", "experiment", "run", "action", "points", "sent", "chunks")
    for r in results:
        colour = "red" if r.action == "crashed" else "green" if r.action == "synced" else "dim"
        table.add_row(
            r.project,
            r.experiment,
            r.run,
            f"[{colour}]{r.action}[/]",
            str(r.points),
            str(r.points_sent),
            str(r.chunks_written),
        )
    console.print(table)
