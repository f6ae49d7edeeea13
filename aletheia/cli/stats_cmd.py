"""``aletheia datasets stats`` and ``aletheia datasets split``.

Plain command functions, registered on the ``datasets`` sub-app: ``stats``
prints the version's own profile first (its files merged into one profile
per table, :mod:`aletheia.stats.versionprofile`), then what the storage
function learned about each file, and the validation against the parent
version; with ``--engine spark`` it first profiles the files the function
deferred (too big for it) with Spark (:mod:`aletheia.spark.versionjob`,
imported only then: pyspark is optional); ``split`` makes a deterministic
row split into new datasets whose ``source`` records where they came from.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aletheia.cli._common import console, err_console, exit_on_error
from aletheia.cli._datasets_common import (
    JsonOption,
    NameArgument,
    ProjectOption,
    VersionOption,
    dataset_store,
    jsonable,
    print_validation,
    version_profile,
    version_validation,
)
from aletheia.cloud import layout

if TYPE_CHECKING:
    from aletheia.data.datasets import DatasetStore


@exit_on_error
def stats(
    name: NameArgument,
    version: VersionOption = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="function: show what the storage function recorded; spark: first profile "
            "the files it deferred (too big for it) with Spark, then show.",
        ),
    ] = "function",
    master: Annotated[
        str | None,
        typer.Option("--master", help="Spark master for --engine spark (default local[*])."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="With --engine spark: profile every file again."),
    ] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Statistics of a dataset version's tables, then of each file, and its validation."""
    # Imported here, not with the module: every `datasets` subcommand loads this
    # module (the group registers `stats`), and the report needs pyarrow.
    from aletheia.stats import report as stats_report

    if engine not in ("function", "spark"):
        raise typer.BadParameter("--engine is function or spark", param_hint="--engine")
    store = dataset_store(project, quiet=True)
    resolved = store.resolve_version(name, version)
    if engine == "spark":
        _profile_with_spark(store, name, resolved, master, force, quiet=as_json)
    manifest = store.manifest(name, resolved)
    records = store.file_records(manifest.values())
    pending = {"status": "pending", "reason": "not analysed yet"}
    files = [(path, records.get(e.sha256, pending)) for path, e in sorted(manifest.items())]
    validation = version_validation(store, name, resolved)
    profile = version_profile(store, name, resolved)
    # A table of one file is that file: shown once, with the files.
    tables = [
        (stats_report.table_title(t), stats_report.table_doc(t))
        for t in (profile or {}).get("tables", [])
        if t.get("files", 0) > 1
    ]
    if html is not None:
        title = f"{name} {resolved} ({store.project})"
        page = stats_report.html_report(title, tables + files, validation)
        html.write_text(page, encoding="utf-8")
    if as_json:
        keep = ("status", "reason", "rows", "format", "schema", "stats")
        keep_more = ("warnings", "notes", "sample", "hint")
        body = {
            "name": name,
            "version": resolved,
            "profile": profile,
            "files": {p: {k: d.get(k) for k in keep + keep_more if k in d} for p, d in files},
            "validation": validation,
        }
        console.print_json(json.dumps(jsonable(body)))
        return
    if profile is None:
        console.print("[yellow]dataset profile: waiting for files to be profiled[/]")
    for path, doc in tables + files:
        console.print(stats_report.file_table(path, doc))
        for line in stats_report.notes(doc):
            console.print(f"  [yellow]{line}[/]")
    print_validation(validation)
    if html is not None:
        console.print(f"wrote {html}")


def _profile_with_spark(
    store: DatasetStore, name: str, version: str, master: str | None, force: bool, quiet: bool
) -> None:
    from aletheia.spark import versionjob

    def progress(result: versionjob.SparkResult) -> None:
        if not quiet:
            # A file left alone has its status and a reason; one the project lost has none.
            status = result.status or "not profiled"
            rows = "" if result.rows is None else f", {result.rows:,} rows"
            why = f" ({result.reason})" if result.reason else ""
            err_console.print(f"spark: {result.path} {status}{rows}{why}", markup=False)

    versionjob.profile_version(store, name, version, master=master, force=force, on_file=progress)


@exit_on_error
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
    from aletheia.stats import splits  # pyarrow: loaded by this command only

    parts = splits.parse_ratios(ratios)
    targets = _part_names(name, names, len(parts))
    store = dataset_store(project, quiet=True)
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
