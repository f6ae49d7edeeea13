"""``aletheia datasets copy`` and ``datasets sample``: a dataset elsewhere, or a share of it."""

from __future__ import annotations

from typing import Annotated

import typer

from aletheia.cli._common import console, err_console, exit_on_error, settings
from aletheia.cli._datasets_common import (
    JsonOption,
    NameArgument,
    ProjectOption,
    VersionOption,
    dataset_store,
    emit_json,
)


@exit_on_error
def copy(
    name: NameArgument,
    to_project: Annotated[
        str | None,
        typer.Option("--to-project", help="Project to copy into (default: this project)."),
    ] = None,
    to_bucket: Annotated[
        str | None,
        typer.Option("--to-bucket", help="Bucket to copy into (default: setting `bucket`)."),
    ] = None,
    new_name: Annotated[
        str | None, typer.Option("--as", help="Name in the target (default: the same).")
    ] = None,
    version: VersionOption = None,
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="Copy every version, not one.")
    ] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy a dataset to another project or bucket, server-side; re-run to resume."""
    from aletheia.data.copy import copy_dataset
    from aletheia.tracking.compose import Backend

    source = dataset_store(project, quiet=True)
    overrides: dict[str, object] = {"project": to_project or source.project}
    if to_bucket is not None:
        overrides["bucket"] = to_bucket
    target = Backend(settings(**overrides)).datasets()
    result = copy_dataset(
        source, target, name, version=version, all_versions=all_versions, new_name=new_name
    )
    if as_json:
        emit_json(result.__dict__)
        return
    where = f"gs://{result.bucket} project {result.project}"
    console.print(
        f"{result.name} in {where}: copied {', '.join(result.copied) or 'no version'}"
        + (f", already there {', '.join(result.skipped)}" if result.skipped else "")
        + f" ({result.blobs_copied} blobs copied, {result.blobs_present} already present)"
    )


@exit_on_error
def sample(
    name: NameArgument,
    fraction: Annotated[str, typer.Option("--fraction", "-f", help="Share to keep: 1% or 0.01.")],
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same sample.")] = 0,
    new_name: Annotated[
        str | None, typer.Option("--as", help="Name of the sample (default: NAME-sample).")
    ] = None,
    version: VersionOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a deterministic sample of a dataset version as its own, linked dataset."""
    from aletheia.data.sample import parse_fraction, sample_dataset

    share = parse_fraction(fraction)
    store = dataset_store(project)
    result, counts = sample_dataset(
        store, name, share, seed=seed, version=version, new_name=new_name
    )
    if as_json:
        emit_json({"name": result.name, "version": result.version, **counts})
        return
    made = "added" if result.created else "unchanged"
    console.print(
        f"{result.name} {result.version} {made}: {counts['rows_out']} of {counts['rows_in']} "
        f"rows in {counts['tables']} tables, {counts['files_kept']} of "
        f"{counts['files_kept'] + counts['files_dropped']} other files"
    )
    if counts["tables_unreadable"]:
        err_console.print(
            f"[yellow]warning:[/] {counts['tables_unreadable']} tables could not be read "
            "(empty or malformed): sampled as whole files"
        )
