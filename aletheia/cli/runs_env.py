"""``aletheia runs env RUN``: a run's requirements, or how this environment differs from it.

Without ``--diff`` the run's installed packages are written to ``--output``
(or stdout) as a file that installs them (:mod:`aletheia.tracking.envfile`):
``--format requirements`` (for ``pip install -r``; editable and local
packages as their source, never as an index name they may not own),
``conda`` (an ``environment.yml``) or ``dockerfile``; ``--imported`` keeps
only the packages the run imported. With ``--diff`` a table shows what is missing here,
installed in another version, and whether python differs; the exit code is
0 when the local environment matches the run (extra local packages do not
count) and 1 when it does not, so scripts can gate on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aletheia.cli._common import console, settings
from aletheia.cli._reading import run_view
from aletheia.errors import NotFoundError
from aletheia.tracking.readapi import RunView, thaw

# The environment capture, the requirements diff and the storage client are imported
# by this command when it runs: `runs` registers it, so `runs list` imports this module.


def env(
    run: Annotated[str, typer.Argument(help="Run id, e.g. 3.", show_default=False)],
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", help="Experiment the run belongs to.")
    ],
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="aletheia project (default: the 'project' setting)."),
    ] = None,
    diff: Annotated[
        bool,
        typer.Option("--diff", help="Show where this environment differs; exit 1 if it does."),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the requirements here instead of stdout."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="With --diff: print the differences as JSON.")
    ] = False,
    show_extra: Annotated[
        bool, typer.Option("--extra", help="With --diff: also list packages only installed here.")
    ] = False,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="requirements, conda (environment.yml) or dockerfile."),
    ] = "requirements",
    imported: Annotated[
        bool, typer.Option("--imported", help="Only the packages the run imported.")
    ] = False,
) -> None:
    """Write a run's requirements, or with --diff show how this environment differs."""
    from aletheia.tracking import envfile
    from aletheia.tracking.compose import Backend

    resolved = settings(project=project)
    view = _recorded_run(resolved, experiment, run)
    blobs = Backend(resolved).blobs
    if output is not None or not diff:
        rendered = envfile.render_for_run(blobs, view, fmt, imported_only=imported)
        if output is not None:
            output.write_text(rendered, encoding="utf-8")
            if diff:
                pass  # the differences are the output
            elif fmt == "requirements":
                count = sum(1 for ln in rendered.splitlines() if ln and not ln.startswith("#"))
                console.print(f"wrote {count} requirements to {output}")
            else:
                console.print(f"wrote the environment ({fmt}) to {output}")
        else:
            typer.echo(rendered, nl=False)
    if diff:
        _, text = envfile.recorded(blobs, view)
        _show_diff(text or "", envfile.python_of(view), json_output, show_extra)


def _recorded_run(resolved: Any, experiment: str, run: str) -> RunView:
    """The run, read once, or a clear NotFoundError when it recorded no environment."""
    view = run_view(resolved, experiment, run)
    recorded = thaw(view.doc.get("env"))
    if not isinstance(recorded, dict) or not recorded.get("packages_ref"):
        where = f"run {run!r} of experiment {experiment!r} in project {resolved.project!r}"
        raise NotFoundError(
            f"{where} has no recorded environment",
            "it was started without environment capture; nothing to reproduce from",
        )
    return view


def _show_diff(text: str, recorded_python: str, json_output: bool, show_extra: bool) -> None:
    from aletheia.tracking import envinfo, reproduce

    result = reproduce.diff_env(
        reproduce.parse_requirements(text), recorded_python, envinfo.capture()
    )
    if json_output:
        typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    elif result.matches and not (show_extra and result.extra):
        console.print(
            f"[green]this environment matches the run[/] ({len(result.extra)} extra package(s))"
        )
    else:
        console.print(reproduce.render_table(result, show_extra=show_extra))
    if not result.matches:
        raise typer.Exit(1)
