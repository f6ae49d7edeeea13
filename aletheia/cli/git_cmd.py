"""``aletheia git install-hooks``, and ``git hook NAME`` that the installed hooks call."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from aletheia.cli._common import console, err_console
from aletheia.cli._datasets_common import dataset_store
from aletheia.errors import ValidationError

app = typer.Typer(help="Git hooks that keep datasets in step with commits.", no_args_is_help=True)


def _root() -> Path:
    from aletheia.data.lockfile import find_repo_root

    root = find_repo_root(None)
    if root is None:
        raise ValidationError(
            f"{Path.cwd()} is not inside a git repository", "run it inside the repository"
        )
    return root


@app.command("install-hooks")
def install_hooks(
    force: Annotated[
        bool, typer.Option("--force", help="Replace hooks of the same names that are not ours.")
    ] = False,
) -> None:
    """Install post-checkout, post-merge and pre-push hooks in this repository."""
    from aletheia.data import githooks

    for path in githooks.install(_root(), force=force):
        console.print(f"installed {path}")
    console.print(
        "git checkout / git pull now put each branch's pinned datasets in place; "
        "git push refuses commits pinning versions that are not stored"
    )


@app.command("hook", hidden=True)
def hook(
    name: Annotated[str, typer.Argument(help="The git hook being run.")],
    args: Annotated[list[str] | None, typer.Argument(help="Its arguments from git.")] = None,
) -> None:
    """Run one hook (called by the scripts install-hooks writes)."""
    from aletheia.data import githooks, pull

    root = _root()
    given = args or []
    if name in ("post-checkout", "post-merge"):
        if name == "post-checkout":
            if len(given) < 3 or given[2] != "1":
                return  # a file checkout, not a branch switch
            if not githooks.lock_changed(root, given[0], given[1]):
                return
        from aletheia.data.lockfile import LockFile

        if not LockFile.load(root).projects():
            return  # this commit pins nothing
        for done in pull.pull_pinned(lambda p: dataset_store(p, quiet=True), None, root):
            err_console.print(f"aletheia: {done.project}/{done.name} {done.version} in place")
    elif name == "pre-push":
        commits = githooks.pushed_commits(sys.stdin.read())
        problems = githooks.missing_pins(lambda p: dataset_store(p, quiet=True), root, commits)
        githooks.refuse_if_missing(problems)
    else:
        raise ValidationError(f"unknown hook {name!r}", f"one of {', '.join(githooks.HOOKS)}")
