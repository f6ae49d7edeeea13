"""Sub-commands registered by name and imported when they run.

Every command module pulls in what it needs (Firestore, Cloud Storage,
pyarrow, rich tables): importing them all to print ``aletheia --help`` or to
run one command cost more than a second. The root group knows each
sub-command by its name, where it lives and one line of help; the module is
imported only when that command is resolved to run (or to print its own
help). The root's listing reads the stand-ins and imports nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Lazy:
    """Where a sub-command lives: ``module:attribute``, a Typer app or a command function.

    ``help`` is the line the root's listing shows (tests check it against the
    real command's). ``extra`` adds commands from other modules to a sub-app
    (``datasets stats`` lives in ``stats_cmd``), in order.
    """

    target: str
    help: str
    extra: dict[str, str] = field(default_factory=dict)


def _resolve(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _register(root: typer.Typer, name: str, obj: Any) -> None:
    if isinstance(obj, typer.Typer):
        root.add_typer(obj, name=name)
    else:
        root.command(name)(obj)


def load(name: str, entry: Lazy) -> Any:
    """The click command ``name`` is, built exactly as ``add_typer``/``command`` would build it."""
    # A throwaway root gives the sub-command the same shape (and plain help) as registering
    # it on the real root, through Typer's public API only.
    root = typer.Typer(rich_markup_mode=None, add_completion=False)
    _register(root, name, _resolve(entry.target))
    for extra_name, target in entry.extra.items():
        root.command(f"{name}.{extra_name}")(_resolve(target))
    group = typer.main.get_group(root)
    command = group.commands[name]
    for extra_name in entry.extra:
        extra = group.commands[f"{name}.{extra_name}"]
        extra.name = extra_name
        command.add_command(extra, extra_name)  # type: ignore[attr-defined]
    return command


class Placeholder(TyperCommand):
    """What the root's listing shows for a sub-command not imported yet: its name and help."""


class LazyGroup(TyperGroup):
    """A root group whose sub-commands (``lazy``) are imported when resolved, not when listed."""

    lazy: ClassVar[dict[str, Lazy]] = {}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, entry in self.lazy.items():
            self.commands.setdefault(name, Placeholder(name=name, help=entry.help))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The real command, imported now if it was a stand-in."""
        command = self.commands.get(cmd_name)
        if isinstance(command, Placeholder):
            command = self.commands[cmd_name] = load(cmd_name, self.lazy[cmd_name])
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The listing of ``--help``: names and help lines of the stand-ins, nothing imported."""
        shown = [(name, cmd) for name, cmd in self.commands.items() if not cmd.hidden]
        if shown:
            limit = formatter.width - 6 - max(len(name) for name, _ in shown)
            rows = [(name, cmd.get_short_help_str(limit)) for name, cmd in shown]
            with formatter.section("Commands"):
                formatter.write_dl(rows)
