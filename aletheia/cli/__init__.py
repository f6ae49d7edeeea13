"""The ``aletheia`` command line: a root Typer app with one sub-app per concern.

Commands stay thin: parse, call the library, print. Library errors
(:class:`~aletheia.errors.AletheiaError`) become one red line and their
exit code, never a traceback.

Sub-commands are listed in :data:`COMMANDS` by name and imported only when
they run (:mod:`aletheia.cli.lazygroup`), so ``aletheia --help`` and each
command load only what they use. Help is click's plain format: Typer's rich
help imports a Markdown renderer, which alone costs more start-up than the
rest of ``--help``.
"""

from __future__ import annotations

import sys

import typer

from aletheia.cli.lazygroup import Lazy, LazyGroup
from aletheia.errors import AletheiaError

#: Every sub-command: where it lives and the line the root's ``--help`` shows, in that order.
COMMANDS: dict[str, Lazy] = {
    "init": Lazy(
        "aletheia.cli.init_cmd:init",
        "Create a project: data/ git-ignored, notebooks/, src/, models/, .aletheia/, git init.",
    ),
    "config": Lazy(
        "aletheia.cli.config_cmd:show_config",
        "Show the resolved settings (argument > env > repository > user config > default).",
    ),
    "sync": Lazy(
        "aletheia.cli.sync_cmd:sync",
        "Replay local run journals into Firestore (exactly once; safe to run again).",
    ),
    "local": Lazy(
        "aletheia.cli.local_cmd:app",
        "Run Firestore, Cloud Storage, Pub/Sub and the storage function locally.",
    ),
    "project": Lazy(
        "aletheia.cli.project_cmd:app",
        "aletheia projects and their members (viewer < writer < owner).",
    ),
    "auth": Lazy(
        "aletheia.cli.auth_cmd:app",
        "Sign in as a Firebase user so Firestore's rules (project roles) apply to you.",
    ),
    "datasets": Lazy(
        "aletheia.cli.datasets_cmd:app",
        "Versioned datasets: content-addressed files in Cloud Storage.",
        extra={
            "stats": "aletheia.cli.stats_cmd:stats",
            "split": "aletheia.cli.stats_cmd:split",
            "backfill-refs": "aletheia.cli.blobrefs_cmd:backfill_refs",
            "reprofile": "aletheia.cli.reprofile_cmd:reprofile",
            "status": "aletheia.cli.datasets_status:status",
            "copy": "aletheia.cli.datasets_copy:copy",
            "sample": "aletheia.cli.datasets_copy:sample",
        },
    ),
    "artifacts": Lazy(
        "aletheia.cli.artifacts_cmd:app",
        "Versioned artifacts of an experiment (models, plots, logs): every save is a version "
        "naming the run that saved it.",
    ),
    "experiments": Lazy("aletheia.cli.experiments_cmd:app", "The experiments of a project."),
    "models": Lazy(
        "aletheia.cli.models_cmd:app",
        "Registered models: numbered immutable versions naming their run, data and code; "
        "aliases (champion, staging ...) that move.",
    ),
    "runs": Lazy(
        "aletheia.cli.runs_cmd:app",
        "List, show and compare runs.",
        extra={"checkout": "aletheia.cli.runs_checkout:checkout"},
    ),
    "run": Lazy(
        "aletheia.cli.run_cmd:run",
        "Execute a notebook headless with parameters; the executed notebook is saved with "
        "its runs.",
    ),
    "git": Lazy("aletheia.cli.git_cmd:app", "Git hooks that keep datasets in step with commits."),
    "env": Lazy("aletheia.cli.env_cmd:app", "Build the environment a run used."),
    "export": Lazy("aletheia.cli.export_cmd:app", "Export runs to other tools' formats."),
    "ui": Lazy(
        "aletheia.cli.ui_cmd:app",
        "Serve the dashboard against the local stack (or the cloud project) until Ctrl-C; "
        "`ui deploy` publishes it on Firebase Hosting.",
    ),
}


class RootGroup(LazyGroup):
    """The root group, knowing :data:`COMMANDS`."""

    lazy = COMMANDS


app = typer.Typer(
    name="aletheia",
    help="Serverless experiment and data tracker on Google Cloud (Firestore + Cloud Storage).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=RootGroup,
)


@app.callback()
def root() -> None:
    """Serverless experiment and data tracker on Google Cloud (Firestore + Cloud Storage)."""
    # Every command is a sub-command (COMMANDS); a callback is what makes the root a group.


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except AletheiaError as exc:
        _fail(exc)
    except Exception as exc:
        from aletheia.cli._common import as_access_denied

        denied = as_access_denied(exc)
        if denied is None:
            raise
        _fail(denied)


def _fail(exc: AletheiaError) -> None:
    from aletheia.cli._common import print_error

    print_error(exc)
    sys.exit(exc.exit_code)


__all__ = ["COMMANDS", "app", "main"]
