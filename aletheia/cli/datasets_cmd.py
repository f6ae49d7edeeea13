"""``aletheia datasets``: add, list, show, versions, pull, diff and rm (stats/split: stats_cmd)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from aletheia.cli._common import console, exit_on_error, settings
from aletheia.cli._datasets_common import (
    JsonOption,
    ProjectOption,
    VersionOption,
    dataset_store,
    print_validation,
    version_validation,
)
from aletheia.data.addresult import CHECKED_LOCAL, AddResult
from aletheia.data.manifests import FileEntry
from aletheia.data.quickadd import unchanged_locally
from aletheia.tracking.compose import Backend

app = typer.Typer(help="Versioned datasets: content-addressed files in Cloud Storage.")


def _emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _entry(e: FileEntry) -> dict[str, Any]:
    return {"path": e.path, "sha256": e.sha256, "size": e.size}


@app.command("add")
@exit_on_error
def add(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    path: Annotated[Path, typer.Argument(help="A file or a directory of files.")],
    desc: Annotated[str | None, typer.Option("--desc", help="Description.")] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Where the data came from.")
    ] = None,
    lock: Annotated[
        bool | None,
        typer.Option(
            "--lock/--no-lock",
            help=(
                "Pin the version in the git repo's lock file, with PATH if it is inside the "
                "repo (kept out of git via .gitignore). Default: when inside a git repo."
            ),
        ),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option(
            "--parent",
            help=(
                "The version this one descends from (default: the version PATH was pulled "
                "from, else the lock file's pin, else the latest)."
            ),
        ),
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also print where the time went: scan, hash, HEAD, upload, documents.",
        ),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help=(
                "Ask the server even when this machine's record of its last add of PATH "
                "says nothing changed (it does not see versions removed elsewhere)."
            ),
        ),
    ] = False,
) -> None:
    """Add the files under PATH as the next version of NAME (nothing new if unchanged)."""
    backend = Backend(settings(project=project))
    result: AddResult | None = None
    if not verify and desc is None and source is None and parent is None:
        # Nothing to write: data this machine added unchanged is answered without the
        # cloud clients, whose import alone costs more than the check (aletheia.data.quickadd).
        result = unchanged_locally(
            backend.settings,
            backend.cache_dir,
            backend.project,
            name,
            path,
            lock=lock,
        )
    if result is None:
        result = dataset_store(project, quiet=as_json, backend=backend).add(
            name, path, desc=desc, source=source, lock=lock, parent=parent
        )
    if as_json:
        _emit_json(result.__dict__)
        return
    if result.checked == CHECKED_LOCAL:
        console.print(
            f"{result.name} unchanged: [bold]{result.version}[/] ({result.file_count} files, "
            f"{_size(result.total_bytes)}; checked on this machine, not re-checked with the "
            "server; --verify asks it)"
        )
        if verbose:
            console.print(_phases(result.seconds), style="dim")
        return
    verb = "created" if result.created else "unchanged, still"
    lineage = (
        f"parent {result.parent} ({_PARENT_FROM[result.parent_from]}); "
        if (result.created and result.parent and result.parent_from)
        else ""
    )
    console.print(
        f"{result.name} {verb} [bold]{result.version}[/] "
        f"({lineage}{result.file_count} files, {_size(result.total_bytes)}; "
        f"uploaded {result.files_uploaded} files, {_size(result.bytes_uploaded)})"
    )
    if verbose:
        console.print(_phases(result.seconds), style="dim")
    if result.lock_file:
        where = f" at {result.workspace_path}" if result.workspace_path else ""
        console.print(f"pinned{where} in {result.lock_file}")
        if result.gitignore_added:
            console.print(f"git ignores it now: added {', '.join(result.gitignore_added)}")
        if result.workspace_path is None:
            console.print(
                f"{path} is outside the repository: only the version is pinned; "
                "`datasets pull` without a name puts it in the cache checkout",
                style="yellow",
            )


#: ``AddResult.seconds`` in the order an add goes through them, with what each one is.
_PHASES = (
    ("scan", "scan", "walk, stat, memo"),
    ("transfer", "hash+upload", "wall, overlapped"),
    ("hash", "hash", "thread time"),
    ("head", "HEAD", "thread time"),
    ("upload", "upload", "thread time"),
    ("documents", "documents", "registry, manifest, version, files/"),
    ("total", "total", ""),
)


def _phases(seconds: dict[str, float]) -> str:
    parts = [
        f"{label} {seconds[key]:.2f} s" + (f" ({what})" if what else "")
        for key, label, what in _PHASES
        if key in seconds
    ]
    return "  " + ", ".join(parts)


_PARENT_FROM = {
    "explicit": "--parent",
    "pull-state": "the version this workspace was pulled from",
    "lock": "the lock file's pin",
    "latest": "the latest version",
}


@app.command("list")
@exit_on_error
def list_(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List the datasets of the project."""
    rows = dataset_store(project, quiet=True).list_datasets()
    if as_json:
        _emit_json(rows)
        return
    table = Table("name", "latest", "versions", "desc", "source")
    for d in rows:
        table.add_row(
            str(d.get("name")),
            str(d.get("latest_version")),
            str(d.get("version_count", "")),
            str(d.get("desc") or ""),
            str(d.get("source") or ""),
        )
    console.print(table)


@app.command("versions")
@exit_on_error
def versions(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the versions of NAME, oldest first."""
    rows = dataset_store(project, quiet=True).versions(name)
    if as_json:
        _emit_json(rows)
        return
    table = Table("version", "parent", "files", "size", "changes", "created")
    for v in rows:
        ch = v.get("changes") or {}
        table.add_row(
            v["version"],
            str(v.get("parent") or "-"),
            str(v.get("file_count")),
            _size(int(v.get("total_bytes", 0))),
            f"+{ch.get('added', 0)} -{ch.get('removed', 0)} ~{ch.get('changed', 0)}",
            str(v.get("created_at", "")),
        )
    console.print(table)


@app.command("show")
@exit_on_error
def show(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    version: VersionOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a version: its files, sizes, schema/stats and validation against its parent."""
    store = dataset_store(project, quiet=True)
    info = store.info(name)
    handle = store.get(name, version, download=False)
    records = store.file_records(handle.files)
    validation = version_validation(store, name, handle.version)
    from aletheia.data.sample import samples_of  # with the store: it loads the cloud clients

    samples = samples_of(store, name)
    if as_json:
        files = [{**_entry(e), **_analysis(records.get(e.sha256, {}))} for e in handle.files]
        _emit_json(
            {
                **info,
                "version": handle.version,
                "files": files,
                "validation": validation,
                "samples": samples,
            }
        )
        return
    console.print(f"[bold]{name}[/] {handle.version}  {info.get('desc') or ''}")
    table = Table("path", "size", "sha256", "status", "schema")
    for e in handle.files:
        rec = _analysis(records.get(e.sha256, {}))
        table.add_row(e.path, _size(e.size), e.sha256[:12], rec["status"] or "", rec["schema"])
    console.print(table)
    _print_lineage(info, samples)
    print_validation(validation)


def _print_lineage(info: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    """Where the dataset came from (a copy, a sample) and the samples made of it."""
    origin = info.get("sampled_from")
    if isinstance(origin, dict):
        console.print(
            f"sampled from {origin.get('dataset')} {origin.get('version')} "
            f"(fraction {origin.get('fraction')}, seed {origin.get('seed')})"
        )
    copied = info.get("copied_from")
    if isinstance(copied, dict):
        console.print(
            f"copied from {copied.get('dataset')} in project {copied.get('project')} "
            f"(gs://{copied.get('bucket')})"
        )
    for s in samples:
        console.print(
            f"sample: {s['dataset']} of {s['version']} (fraction {s['fraction']}, seed {s['seed']})"
        )


def _analysis(record: dict[str, Any]) -> dict[str, Any]:
    """Status, a one-line schema summary and the stats the storage function wrote."""
    schema = record.get("schema")
    summary = ""
    if isinstance(schema, dict):
        count = schema.get("columns_total", len(schema.get("columns") or []))
        summary = f"{count} columns"
        if record.get("rows") is not None:
            summary += f", {record['rows']} rows"
    return {"status": record.get("status"), "schema": summary, "stats": record.get("stats")}


@app.command("pull")
@exit_on_error
def pull(
    name: Annotated[
        str | None,
        typer.Argument(help="Dataset name (none: every dataset the lock file pins)."),
    ] = None,
    version: VersionOption = None,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="Copy the files here (default: the path the lock file records, else a cache "
            "checkout).",
        ),
    ] = None,
    lock: Annotated[
        bool, typer.Option("--lock/--no-lock", help="Pin the pulled version in the lock file.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Overwrite or remove local edits no version holds (they are lost)."
        ),
    ] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a version (the lock file's pin unless --version), verifying every file.

    Without NAME, pull every dataset the repository's lock file pins (of
    --project, else of every project in it) to the path it records, like
    `dvc pull` in a fresh clone. Local edits in the way (bytes no version
    holds) stop the pull unless --force.
    """
    from aletheia.data import pull as pulling  # the store's modules: not for every add

    if name is None:
        if version is not None or to is not None or lock:
            raise typer.BadParameter("--version, --to and --lock need a dataset NAME")
        done = pulling.pull_pinned(lambda p: dataset_store(p, quiet=as_json), project, force=force)
        if as_json:
            _emit_json([d.__dict__ for d in done])
            return
        for d in done:
            where = d.path if d.path is not None else f"{d.local_path} (cache checkout)"
            console.print(f"{d.project}/{d.name} {d.version}: {d.file_count} files in {where}")
        return
    handle, used = pulling.pull(
        dataset_store(project, quiet=as_json), name, version, to=to, lock=lock, force=force
    )
    if as_json:
        _emit_json(
            {
                "name": handle.name,
                "version": handle.version,
                "local_path": handle.local_path,
                "path": used,
                "files": [_entry(e) for e in handle.files],
            }
        )
        return
    console.print(f"{name} {handle.version}: {len(handle.files)} files in {handle.local_path}")


@app.command("diff")
@exit_on_error
def diff(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    v1: Annotated[str, typer.Argument(help="Older version.")],
    v2: Annotated[str, typer.Argument(help="Newer version.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Files added, removed and changed from V1 to V2."""
    d = dataset_store(project, quiet=True).diff(name, v1, v2)
    if as_json:
        _emit_json(
            {
                "added": [_entry(e) for e in d.added],
                "removed": [_entry(e) for e in d.removed],
                "changed": [
                    {"path": n.path, "old": _entry(o), "new": _entry(n)} for o, n in d.changed
                ],
            }
        )
        return
    for e in d.added:
        console.print(f"[green]+ {e.path}[/]  {_size(e.size)}")
    for e in d.removed:
        console.print(f"[red]- {e.path}[/]  {_size(e.size)}")
    for o, n in d.changed:
        console.print(f"[yellow]~ {n.path}[/]  {_size(o.size)} -> {_size(n.size)}")
    c = d.counts
    console.print(f"{c['added']} added, {c['removed']} removed, {c['changed']} changed")


@app.command("rm")
@exit_on_error
def rm(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    version: Annotated[str, typer.Option("--version", "-v", help="The version to remove.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Remove it even if recorded runs used it."),
    ] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove one version. Refused if recorded runs used it (unless --force); blobs other
    versions, datasets, artifacts, runs or MLflow files reference are kept, and so are
    blobs stored before aletheia kept a reference registry (nothing is known about them)."""
    result = dataset_store(project, quiet=True).remove_version(name, version, force=force)
    if as_json:
        _emit_json(result.__dict__)
        return
    if result.runs:
        console.print(f"[yellow]removed although used by run(s): {', '.join(result.runs)}[/]")
    if result.damaged:
        console.print(
            f"[yellow]damaged manifest(s): {name} {', '.join(result.damaged)}; the blobs they "
            "may list were kept (remove those versions with --force)[/]"
        )
    unknown = (
        f" ({result.blobs_unregistered} with no reference record: kept to be safe)"
        if result.blobs_unregistered
        else ""
    )
    console.print(
        f"removed {name} {version}: {result.blobs_deleted} blobs deleted, "
        f"{result.blobs_kept} kept{unknown}; latest is now {result.latest_version or '(none)'}"
        + (
            f"; {result.derived_deleted} row sample/profile object(s) of them deleted too"
            if result.derived_deleted
            else ""
        )
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover
