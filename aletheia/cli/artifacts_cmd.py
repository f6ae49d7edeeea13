"""``aletheia artifacts``: list, versions, show and pull an experiment's versioned artifacts."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.filesize import decimal
from rich.table import Table

from aletheia.cli._common import console, exit_on_error, settings
from aletheia.cli._datasets_common import (
    JsonOption,
    ProjectOption,
    RichReporter,
    ToOption,
    emit_json,
)
from aletheia.data.artifacts import ArtifactStore

app = typer.Typer(
    help="Versioned artifacts of an experiment (models, plots, logs): every save is a version "
    "naming the run that saved it.",
    no_args_is_help=True,
)

ExperimentOption = Annotated[
    str, typer.Option("--experiment", "-e", help="Experiment holding the artifacts.")
]
NameArgument = Annotated[str, typer.Argument(help="Artifact name.")]
VersionOption = Annotated[
    str | None,
    typer.Option("--version", "-v", help="Version id, e.g. v2 (default: the latest)."),
]
RunOption = Annotated[
    str | None,
    typer.Option("--run", "-r", help="The version this run saved (its last save of the name)."),
]


def _store(project: str | None, *, quiet: bool) -> ArtifactStore:
    from aletheia.tracking.compose import Backend

    backend = Backend(settings(project=project))
    return backend.artifacts(reporter=None if quiet else RichReporter())


def _size(n: Any) -> str:
    return decimal(int(n)) if isinstance(n, int) else "-"


@app.command("list")
@exit_on_error
def list_(
    experiment: ExperimentOption, project: ProjectOption = None, as_json: JsonOption = False
) -> None:
    """List the artifacts of an experiment with their latest version."""
    rows = _store(project, quiet=True).list_artifacts(experiment)
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "latest", "versions", "run", "kind", "files", "size")
    for r in rows:
        table.add_row(
            str(r.get("name")),
            str(r.get("latest_version")),
            str(r.get("version_count", "")),
            str(r.get("run") or "-"),
            str(r.get("kind", "")),
            str(r.get("file_count") if r.get("file_count") is not None else "-"),
            _size(r.get("total_bytes")),
        )
    console.print(table)


@app.command("versions")
@exit_on_error
def versions(
    name: NameArgument,
    experiment: ExperimentOption,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """List every version of NAME, oldest first, with the run that saved it."""
    rows = _store(project, quiet=True).versions(experiment, name)
    if as_json:
        emit_json(rows)
        return
    table = Table("version", "run", "kind", "files", "size", "created")
    for v in rows:
        table.add_row(
            str(v.get("version")),
            str(v.get("run") or "-"),
            str(v.get("kind", "")),
            str(v.get("file_count") if v.get("file_count") is not None else "-"),
            _size(v.get("total_bytes")),
            str(v.get("created_at") or ""),
        )
    console.print(table)


@app.command("show")
@exit_on_error
def show(
    name: NameArgument,
    experiment: ExperimentOption,
    version: VersionOption = None,
    run: RunOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one version of NAME: the run that saved it and its files."""
    av = _store(project, quiet=True).get(experiment, name, version, run=run)
    if as_json:
        emit_json(av.to_dict())
        return
    console.print(
        f"[bold]{name}[/] {av.version}  saved by run {av.run or '-'}  ({av.kind}"
        + (f", {av.uri}" if av.uri else "")
        + ("" if av.uploaded or av.kind == "remote" else ", bytes not uploaded")
        + ")"
    )
    table = Table("path", "size", "sha256")
    for f in av.files:
        table.add_row(f.path, _size(f.size), f.sha256[:12])
    console.print(table)


@app.command("pull")
@exit_on_error
def pull(
    name: NameArgument,
    experiment: ExperimentOption,
    version: VersionOption = None,
    run: RunOption = None,
    to: ToOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download one version of NAME through the local cache, verifying every file."""
    av = _store(project, quiet=as_json).get(experiment, name, version, run=run)
    where = av.download(to, verify="full")
    if as_json:
        emit_json({**av.to_dict(), "local_path": str(where)})
        return
    console.print(f"{name} {av.version} (run {av.run or '-'}): {len(av.files)} files in {where}")
