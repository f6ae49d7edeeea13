"""``aletheia datasets stats`` and ``aletheia datasets split``.

Plain command functions, registered on the ``datasets`` sub-app: ``stats``
prints what the storage function learned about each file of a version (and
its validation against the parent version); ``split`` makes a deterministic
row split into new datasets whose ``source`` records where they came from.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from aletheia.cli._common import console, exit_on_error
from aletheia.cli._datasets_common import (
    JsonOption,
    NameArgument,
    ProjectOption,
    VersionOption,
    dataset_store,
    jsonable,
    print_validation,
    version_validation,
)
from aletheia.cloud import layout


@exit_on_error
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
    # Imported here, not with the module: every `datasets` subcommand loads this
    # module (the group registers `stats`), and the report needs pyarrow.
    from aletheia.stats import report as stats_report

    store = dataset_store(project, quiet=True)
    resolved = store.resolve_version(name, version)
    manifest = store.manifest(name, resolved)
    records = store.file_records(manifest.values())
    pending = {"status": "pending", "reason": "not analysed yet"}
    files = [(path, records.get(e.sha256, pending)) for path, e in sorted(manifest.items())]
    validation = version_validation(store, name, resolved)
    if html is not None:
        title = f"{name} {resolved} ({store.project})"
        html.write_text(stats_report.html_report(title, files, validation), encoding="utf-8")
    if as_json:
        keep = ("status", "reason", "rows", "format", "schema", "stats")
        keep_more = ("warnings", "notes", "sample")
        body = {
            "name": name,
            "version": resolved,
            "files": {p: {k: d.get(k) for k in keep + keep_more if k in d} for p, d in files},
            "validation": validation,
        }
        console.print_json(json.dumps(jsonable(body)))
        return
    for path, doc in files:
        console.print(stats_report.file_table(path, doc))
        for line in stats_report.notes(doc):
            console.print(f"  [yellow]{line}[/]")
    print_validation(validation)
    if html is not None:
        console.print(f"wrote {html}")


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
