"""``aletheia sync``: send what runs logged offline, and settle runs whose process died."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from aletheia.cli._common import console, settings
from aletheia.tracking import sync as sync_mod


def sync(
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Only this aletheia project (default: all)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Resend every journal, even settled ones.")
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Also check runs already synced against Firestore and write again what it "
            "lost (e.g. a local emulator restarted from an older copy).",
        ),
    ] = False,
    keep_days: Annotated[
        float,
        typer.Option(
            "--keep-days",
            min=0,
            help="Delete journals of runs settled in Firestore and untouched this long "
            "(unsettled journals are always kept).",
        ),
    ] = sync_mod.KEEP_SETTLED_DAYS,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Replay local run journals into Firestore (exactly once; safe to run again)."""
    resolved = settings()
    results = sync_mod.sync_all(resolved, project=project, force=force, verify=verify)
    results += sync_mod.prune_settled(resolved, keep_days=keep_days)
    # A journal that could not be settled is reported on its own row; the others are
    # synced all the same, and the exit code says that something is left to do.
    unsettled = [r for r in results if r.action.startswith(("failed", "refused"))]
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in results]))
        if unsettled:
            raise typer.Exit(1)
        return
    if not results:
        console.print("no run journals on this machine: nothing to sync")
        return
    table = Table("project", "experiment", "run", "action", "points", "sent", "chunks", "unplaced")
    for r in results:
        colour = {"crashed": "red", "synced": "green", "pruned": "yellow"}.get(r.action, "dim")
        if r in unsettled:
            colour = "bold red"
        table.add_row(
            r.project,
            r.experiment,
            r.run,
            f"[{colour}]{r.action}[/]",
            str(r.points),
            str(r.points_sent),
            str(r.chunks_written),
            str(r.unplaced or ""),
        )
    console.print(table)
    if unsettled:
        console.print(
            f"[bold red]{len(unsettled)} journal(s) not settled[/]: see their action; the "
            "others are synced"
        )
        raise typer.Exit(1)
