"""What the ``datasets`` commands share: options, the store, progress, validation output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from aletheia.cli._common import console, err_console, settings
from aletheia.cloud import layout
from aletheia.data.hashing import OnBytes
from aletheia.tracking.compose import Backend

if TYPE_CHECKING:  # imported when a store is built: it loads the cloud clients
    from aletheia.data.datasets import DatasetStore

ProjectOption = Annotated[
    str | None,
    typer.Option("--project", "-p", help="aletheia project (default: setting `project`)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
VersionOption = Annotated[
    str | None, typer.Option("--version", "-v", help="Version id (default: lock pin, else latest).")
]


NameArgument = Annotated[str, typer.Argument(help="Dataset name.")]


class RichReporter:
    """Progress bars with bytes, bytes/s and ETA, on stderr (stdout stays for --json)."""

    @contextmanager
    def phase(self, description: str, total: int) -> Iterator[OnBytes]:
        """One bar per phase; nothing is drawn for an empty phase."""
        if total <= 0:
            yield lambda _n: None
            return
        with Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        ) as progress:
            task = progress.add_task(description, total=total)
            yield lambda n: progress.advance(task, n)


def dataset_store(
    project: str | None, *, quiet: bool = False, backend: Backend | None = None
) -> DatasetStore:
    """The project's DatasetStore (on ``backend``, default: the settings' own), with progress
    bars unless ``quiet``."""
    backend = backend or Backend(settings(project=project))
    return backend.datasets(reporter=None if quiet else RichReporter())


def jsonable(value: Any) -> Any:
    """Timestamps and other Firestore values as JSON-friendly text."""
    return json.loads(json.dumps(value, default=str))


def emit_json(value: Any) -> None:
    """Print ``value`` as the indented, key-sorted JSON ``--json`` promises."""
    typer.echo(json.dumps(jsonable(value), indent=2, sort_keys=True))


#: Where ``pull`` copies a stored version's files (artifacts and models alike).
ToOption = Annotated[
    Path | None,
    typer.Option("--to", help="Copy the files here (default: a read-only cache checkout)."),
]


def version_validation(store: DatasetStore, name: str, version: str) -> dict[str, Any] | None:
    """The version's recorded validation; if none yet, computed in memory (never written).

    Reading never writes: viewers may not, and the writers of the data record
    it (:mod:`aletheia.stats.versioncheck`). ``recorded`` says which one this is.
    """
    doc = store.db.document(layout.dataset_version(store.project, name, version)).get().to_dict()
    found = (doc or {}).get("validation")
    if found is not None:
        return {**jsonable(found), "recorded": True}
    # Imported here: it loads numpy, which most dataset commands (add, list) never need.
    from aletheia.stats import versioncheck

    computed = versioncheck.compute(
        store.db, store.project, name, doc or {}, store.manifest, profiles=store.file_profile
    )
    return None if computed is None else {**jsonable(computed), "recorded": False}


def version_profile(store: DatasetStore, name: str, version: str) -> dict[str, Any] | None:
    """The version's recorded profile (its tables); if none yet, or a table was cut to fit
    the document, merged in memory (never written).

    ``None`` while some file of the version is not profiled yet; ``recorded``
    says whether what is shown is the recorded profile.
    """
    found = store.version_profile(name, version)
    # Only a recorded profile has its stamp (versionprofile.record).
    return None if found is None else {**jsonable(found), "recorded": "computed_at" in found}


def print_validation(validation: dict[str, Any] | None) -> None:
    if validation is None:
        return
    if validation.get("ok"):
        console.print(f"[green]validation against {validation.get('parent')}: no anomalies[/]")
        return
    console.print(
        f"[red]validation against {validation.get('parent')}: "
        f"{validation.get('anomalies')} anomalies[/]"
    )
    for entry in (validation.get("tables") or {}).values():
        for a in entry.get("anomalies", []):
            where = f"table {entry['table']}"
            console.print(f"  {where}: {a['kind']} [bold]{a['column']}[/] ({a['detail']})")
    for entry in (validation.get("files") or {}).values():
        for a in entry.get("anomalies", []):
            console.print(f"  {entry['path']}: {a['kind']} [bold]{a['column']}[/] ({a['detail']})")
