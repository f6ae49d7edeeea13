"""``aletheia config``: show every resolved setting and where it came from."""

from __future__ import annotations

from rich.table import Table

from aletheia.cli._common import StackDirOption, console, settings


def show_config(stack_dir: StackDirOption = None) -> None:
    """Show the resolved settings (argument > env > config file > default)."""
    resolved = settings(stack_dir=stack_dir)
    table = Table("setting", "value", "from")
    for name, (value, source) in resolved.describe().items():
        table.add_row(name, value, source)
    console.print(table)
