"""The ``aletheia`` command line: a root Typer app with one sub-app per concern.

Commands stay thin: parse, call the library, print. Library errors
(:class:`~aletheia.errors.AletheiaError`) become one red line and their
exit code, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from google.api_core import exceptions as gexc

from aletheia.cli import (
    artifacts_cmd,
    auth_cmd,
    blobrefs_cmd,
    config_cmd,
    datasets_cmd,
    export_cmd,
    local_cmd,
    project_cmd,
    reprofile_cmd,
    runs_cmd,
    stats_cmd,
    sync_cmd,
    ui_cmd,
)
from aletheia.cli._common import access_denied, console, print_error
from aletheia.errors import AletheiaError

app = typer.Typer(
    name="aletheia",
    help="Serverless experiment and data tracker on Google Cloud (Firestore + Cloud Storage).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(local_cmd.app, name="local")
app.add_typer(project_cmd.app, name="project")
app.add_typer(auth_cmd.app, name="auth")
datasets_cmd.app.command("stats")(stats_cmd.stats)
datasets_cmd.app.command("split")(stats_cmd.split)
datasets_cmd.app.command("backfill-refs")(blobrefs_cmd.backfill_refs)
datasets_cmd.app.command("reprofile")(reprofile_cmd.reprofile)
app.add_typer(datasets_cmd.app, name="datasets")
app.add_typer(artifacts_cmd.app, name="artifacts")
app.command("config")(config_cmd.show_config)
app.add_typer(runs_cmd.app, name="runs")
app.command("sync")(sync_cmd.sync)
app.add_typer(export_cmd.app, name="export")
app.command("ui")(ui_cmd.ui)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except AletheiaError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)
    except gexc.PermissionDenied as exc:
        denied = access_denied(exc)
        print_error(denied)
        sys.exit(denied.exit_code)


__all__ = ["app", "console", "main"]
