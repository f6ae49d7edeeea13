"""``aletheia datasets stats`` and ``aletheia datasets split``.

Plain command functions, registered on the ``datasets`` sub-app: ``stats``
prints what the storage function learned about each file of a version (and
its validation against the parent version); ``split`` makes a deterministic
row split into new datasets whose ``source`` records where they came from.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from aletheia import clients, drift, layout, splits, stats_report
from aletheia.blobstore import BlobStore
from aletheia.cache import LocalCache
from aletheia.cli._common import console, err_console, settings
from aletheia.datasets import DatasetStore
from aletheia.errors import AletheiaError

_F = TypeVar("_F", bound=Callable[..., Any])

ProjectOption = Annotated[
    str | None,
    typer.Option("--project", "-p", help="aletheia project (default: setting `project`)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
VersionOption = Annotated[
    str | None, typer.Option("--version", "-v", help="Version id (default: lock pin, else latest).")
]
NameArgument = Annotated[str, typer.Argument(help="Dataset name.")]


def _errors(func: _F) -> _F:
    """Library errors become a red line, a hint and their exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AletheiaError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}")
            if exc.hint:
                err_console.print(f"[yellow]hint:[/] {exc.hint}")
            raise typer.Exit(exc.exit_code) from exc

    return wrapper  # type: ignore[return-value]


def _store(project: str | None) -> DatasetStore:
    resolved = settings(project=project)
    blobs = BlobStore(clients.storage_client(resolved), resolved.bucket, resolved.project)
    return DatasetStore(
        clients.firestore_client(resolved),
        blobs,
        LocalCache(resolved.cache_dir / "files"),
        resolved.project,
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@_errors
def stats(
    name: NameArgument,
    version: VersionOption = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Schema and statistics of each file of a dataset version, and its validation."""
    store = _store(project)
    resolved = store.resolve_version(name, version)
    manifest = store.manifest(name, resolved)
    records = store.file_records(manifest.values())
    pending = {"status": "pending", "reason": "not analysed yet"}
    files = [(path, records.get(e.sha256, pending)) for path, e in sorted(manifest.items())]
    validation = _validation(store, name, resolved)
    if html is not None:
        title = f"{name} {resolved} ({store.project})"
        html.write_text(stats_report.html_report(title, files, validation), encoding="utf-8")
    if as_json:
        keep = ("status", "reason", "rows", "format", "schema", "stats", "warnings", "sample")
        body = {
            "name": name,
            "version": resolved,
            "files": {p: {k: d.get(k) for k in keep if k in d} for p, d in files},
            "validation": validation,
        }
        console.print_json(json.dumps(_jsonable(body)))
        return
    for path, doc in files:
        console.print(stats_report.file_table(path, doc))
        for line in stats_report.notes(doc):
            console.print(f"  [yellow]{line}[/]")
    _print_validation(validation)
    if html is not None:
        console.print(f"wrote {html}")


def _validation(store: DatasetStore, name: str, version: str) -> dict[str, Any] | None:
    """The version's validation, computed now if the function has not yet."""
    ref = store.db.document(layout.dataset_version(store.project, name, version))
    doc = ref.get().to_dict() or {}
    if doc.get("validation") is None and doc.get("parent"):
        drift.validate_dataset(store.db, store.blobs, store.project, name, version)
        doc = ref.get().to_dict() or {}
    found = doc.get("validation")
    return _jsonable(found) if found is not None else None


def _print_validation(validation: dict[str, Any] | None) -> None:
    if validation is None:
        return
    if validation.get("ok"):
        console.print(f"[green]validation against {validation.get('parent')}: no anomalies[/]")
        return
    console.print(
        f"[red]validation against {validation.get('parent')}: "
        f"{validation.get('anomalies')} anomalies[/]"
    )
    for entry in (validation.get("files") or {}).values():
        for a in entry.get("anomalies", []):
            console.print(f"  {entry['path']}: {a['kind']} [bold]{a['column']}[/] ({a['detail']})")


@_errors
def split(
    name: NameArgument,
    ratios: Annotated[str, typer.Option("--ratios", help="Part sizes, e.g. 0.7,0.3.")] = "0.7,0.3",
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same split.")] = 0,
    version: VersionOption = None,
    names: Annotated[
        str | None,
        typer.Option("--names", help="Comma-separated names of the new datasets (NAME-0, ...)."),
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Split every table of a dataset version into new datasets, row by row, deterministically."""
    parts = splits.parse_ratios(ratios)
    targets = _part_names(name, names, len(parts))
    store = _store(project)
    resolved = store.resolve_version(name, version)
    with tempfile.TemporaryDirectory(prefix="aletheia-split-") as tmp:
        root = Path(tmp)
        handle = store.get(name, resolved, to=root / "source")
        assert handle.local_path is not None
        outs = [root / f"part{k}" for k in range(len(parts))]
        for out in outs:
            out.mkdir()
        result = splits.split_tree(
            handle.local_path, [e.path for e in handle.files], outs, parts, seed
        )
        created = []
        for k, (target, out) in enumerate(zip(targets, outs, strict=True)):
            source = f"split of {name}@{resolved}: ratios {ratios}, seed {seed}, part {k}"
            added = store.add(target, out, desc=source, source=source, lock=False)
            created.append({"name": target, "version": added.version, "rows": result.totals()[k]})
    if as_json:
        console.print_json(json.dumps({"source": f"{name}@{resolved}", "parts": created}))
        return
    for entry in created:
        console.print(f"{entry['name']} {entry['version']}: {entry['rows']:,} rows")
    if result.copied:
        console.print(f"copied whole into {targets[0]}: {', '.join(result.copied)}")


def _part_names(name: str, names: str | None, count: int) -> list[str]:
    chosen = (
        [n.strip() for n in names.split(",")] if names else [f"{name}-{k}" for k in range(count)]
    )
    if len(chosen) != count:
        raise typer.BadParameter(f"--names needs {count} names, one per ratio")
    return [layout.validate_id(n, "dataset name") for n in chosen]
