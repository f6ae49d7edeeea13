"""``aletheia config``: show every resolved setting and where it came from."""

from __future__ import annotations

import warnings

from rich.table import Table

from aletheia.cli._common import StackDirOption, console
from aletheia.cloud import config
from aletheia.cloud.config import ConfigWarning


def show_config(stack_dir: StackDirOption = None) -> None:
    """Show the resolved settings (argument > env > repository > user config > default)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)  # shown below the table instead
        resolved = config.resolve({"stack_dir": stack_dir})
    table = Table("setting", "value", "from")
    for name, (value, source) in resolved.describe().items():
        table.add_row(name, value, source)
    console.print(table)
    for note in resolved.notes:
        console.print(f"[yellow]warning:[/] {note}")
