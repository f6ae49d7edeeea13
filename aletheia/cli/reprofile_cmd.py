"""``aletheia datasets reprofile``: profile a version's files again (all, stuck ones, or one).

A plain command function, registered on the ``datasets`` sub-app. It makes
the bucket send each file's finalize event again, so the deployed storage
function does the work (:func:`aletheia.function.leases.reemit`), and waits for the
results; ``--in-process`` runs the function's code path here instead
(credentials that may write the ``Files`` registry: server credentials, or
the local stack).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from aletheia.cli._common import console, err_console, exit_on_error
from aletheia.cli._datasets_common import (
    JsonOption,
    NameArgument,
    ProjectOption,
    VersionOption,
    dataset_store,
)
from aletheia.cloud import layout
from aletheia.errors import NotFoundError

if TYPE_CHECKING:
    from aletheia.function import leases


@exit_on_error
def reprofile(
    name: NameArgument,
    version: VersionOption = None,
    stuck: Annotated[
        bool,
        typer.Option(
            "--stuck",
            help="Only files whose profiling never finished (a worker died, the event was lost).",
        ),
    ] = False,
    sha: Annotated[
        list[str] | None,
        typer.Option("--sha", help="Only this file (sha256 of its content); repeatable."),
    ] = None,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Profile here, with the function's code, instead of re-sending the bucket's "
            "event to the deployed function.",
        ),
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", metavar="SECONDS", min=0, help="How long to wait for the function's results."
        ),
    ] = 600.0,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Profile a version's files again: the storage function does it (or --in-process)."""
    # Imported here: the profiler behind it (pyarrow) is loaded by every `datasets`
    # subcommand otherwise, since the group registers this one (`datasets add` included).
    from aletheia.function import leases

    store = dataset_store(project, quiet=True)
    handle = store.get(name, version, download=False)
    digests = {e.sha256 for e in handle.files}
    if sha:
        wanted = {layout.validate_sha256(s) for s in sha}
        digests &= wanted
        if not digests:
            raise NotFoundError(
                f"no file of {name} {handle.version} has that sha256",
                f"see `aletheia datasets show {name} --version {handle.version}`",
            )
    total = len(digests)
    seen = 0

    def progress(result: leases.Redriven) -> None:
        nonlocal seen
        seen += 1
        if not as_json:
            err_console.print(f"[{seen}/{total}] {result.sha256[:12]} {result.status}")

    results = leases.reprofile(
        store.db,
        store.blobs.client,
        store.blobs.bucket.name,
        store.project,
        digests,
        stuck_only=stuck,
        on_file=progress,
        in_process=in_process,
        wait_s=wait,
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "dataset": name,
                    "version": handle.version,
                    "files": total,
                    "reprofiled": [r.to_dict() for r in results],
                },
                indent=2,
                sort_keys=True,
            )
        )
        return
    by_status: dict[str, int] = {}
    for r in results:
        by_status[str(r.status)] = by_status.get(str(r.status), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "nothing to do"
    done = f"{len(results)} of {total} files reprofiled"
    console.print(f"{name} {handle.version}: {done} ({summary})")
