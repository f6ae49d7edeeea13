"""``aletheia local up | down | status``: the local emulator stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aletheia.cli._common import StackDirOption, console, settings
from aletheia.devstack import local

app = typer.Typer(
    help="Run Firestore, Cloud Storage, Pub/Sub and the storage function locally.",
    no_args_is_help=True,
)


def _port(part: str) -> object:
    return typer.Option(
        f"--{part}-port", help=f"Port of the {part} part.", min=1, max=65535, show_default=True
    )


@app.command()
def up(
    stack_dir: StackDirOption = None,
    firestore_port: Annotated[int, _port("firestore")] = local.DEFAULT_PORTS["firestore"],
    storage_port: Annotated[int, _port("storage")] = local.DEFAULT_PORTS["storage"],
    pubsub_port: Annotated[int, _port("pubsub")] = local.DEFAULT_PORTS["pubsub"],
    function_port: Annotated[int, _port("function")] = local.DEFAULT_PORTS["function"],
    bridge_port: Annotated[int, _port("bridge")] = local.DEFAULT_PORTS["bridge"],
    auth_port: Annotated[int, _port("auth")] = local.DEFAULT_PORTS["auth"],
    downloads_port: Annotated[int, _port("downloads")] = local.DEFAULT_PORTS["downloads"],
    auth: Annotated[
        bool,
        typer.Option(
            "--auth",
            help="Also run the Firebase Auth emulator (needs firebase-tools), "
            "to sign in with `aletheia auth login` and have the rules judge you.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each part to become healthy.")
    ] = 90.0,
    function_source: Annotated[
        Path | None, typer.Option(help="functions/main.py to serve (default: the checkout's).")
    ] = None,
    export_every: Annotated[
        float | None,
        typer.Option(
            "--export-every",
            metavar="SECONDS",
            min=0,
            help="Save Firestore's documents into the stack dir this often, so an emulator "
            "that dies loses at most this much; 0: only on `local down` "
            "(setting export_every, ALETHEIA_EXPORT_EVERY; default 60).",
        ),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            metavar="PART,...",
            help="Start only these parts, e.g. `--only firestore` (storage needs pubsub; "
            "the bridge needs pubsub and function). Default: all (auth with --auth).",
        ),
    ] = None,
) -> None:
    """Start the local stack in the background (or reuse it if it is already healthy)."""
    every = None if export_every is None else repr(export_every)
    resolved = settings(stack_dir=stack_dir, export_every=every)
    ports = {
        "firestore": firestore_port,
        "storage": storage_port,
        "pubsub": pubsub_port,
        "function": function_port,
        "bridge": bridge_port,
        "auth": auth_port,
        "downloads": downloads_port,
    }
    cfg = local.StackConfig(
        stack_dir=resolved.stack_dir,
        ports=ports,
        startup_timeout_s=timeout,
        function_source=function_source,
        auth=auth,
        export_interval_s=resolved.export_every,
        only=tuple(p.strip() for p in (only or "").split(",") if p.strip()),
    )
    state = local.up(cfg, echo=console.print)
    _print_state(state)
    console.print(local.export_note(state))
    console.print("\nClients find this stack by themselves; other tools need:")
    for key, value in state.env.items():
        console.print(f"  export {key}={value}", highlight=False, soft_wrap=True)
    console.print(f"\nStop it with: aletheia local down --stack-dir {resolved.stack_dir}")


@app.command()
def down(
    stack_dir: StackDirOption = None,
    discard: Annotated[
        bool,
        typer.Option(
            "--discard", help="Drop the Firestore data instead of saving it for the next `up`."
        ),
    ] = False,
) -> None:
    """Stop every part of the local stack (Firestore's documents are saved for the next `up`)."""
    local.down(settings(stack_dir=stack_dir).stack_dir, keep_data=not discard, echo=console.print)


@app.command()
def status(stack_dir: StackDirOption = None) -> None:
    """Show which parts run where; exit code 1 unless all are healthy."""
    resolved = settings(stack_dir=stack_dir)
    state = local.load_state(resolved.stack_dir)
    if state is None:
        console.print(f"no local stack in {resolved.stack_dir} (start one: aletheia local up)")
        raise typer.Exit(1)
    health = _print_state(state)
    console.print(local.export_note(state))
    if any(v != "healthy" for v in health.values()):
        raise typer.Exit(1)


def _print_state(state: local.StackState) -> dict[str, str]:
    table = Table("part", "address", "pid", "status", "log")
    health = {}
    for name in state.part_names:
        part = state.parts.get(name)
        health[name] = local.status_of(part)
        if part is None:
            table.add_row(name, "-", "-", health[name], "-")
            continue
        colour = "green" if health[name] == "healthy" else "red"
        table.add_row(name, part.address, str(part.pid), f"[{colour}]{health[name]}[/]", part.log)
    console.print(table)
    return health
