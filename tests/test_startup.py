"""Start-up: importing aletheia and asking the CLI for help load no cloud client or data library.

Counted, never timed: each check runs a fresh interpreter and reads which
heavy modules ended up in ``sys.modules``. Their import is most of a second
(gRPC, protobuf, pyarrow), so one of them appearing is the regression.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from aletheia.cli import COMMANDS, app
from aletheia.cli.lazygroup import load

#: What neither ``import aletheia`` nor ``aletheia --help`` may import.
HEAVY = (
    "google.cloud.firestore",
    "google.cloud.storage",
    "google.api_core.exceptions",
    "google.auth.credentials",
    "grpc",
    "pyarrow",
    "numpy",
    "duckdb",
    "mlflow",
    "requests",
    "tenacity",
)


def _heavy_loaded(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the :data:`HEAVY` modules it left loaded."""
    probe = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: print(json.dumps([m for m in {HEAVY!r} if m in sys.modules])))\n"
        f"{code}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_import_aletheia_loads_no_client_library() -> None:
    assert _heavy_loaded("import aletheia") == []


def test_the_public_api_loads_the_firestore_client_on_first_use() -> None:
    """``from aletheia import Metastore`` is the training script's first line: still no gRPC."""
    assert _heavy_loaded("from aletheia import Metastore, Run, resolve; Metastore, Run") == []


def test_help_loads_no_command_module() -> None:
    code = (
        "sys.argv = ['aletheia', '--help']\n"
        "from aletheia.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert not [m for m in sys.modules if m.startswith('aletheia.cli.') and "
        "m.endswith('_cmd')], sorted(sys.modules)\n"
    )
    assert _heavy_loaded(code) == []


def test_config_command_loads_no_client_library(tmp_path) -> None:
    """A command that never talks to the cloud does not import its clients."""
    code = (
        "import os\n"
        f"os.environ['ALETHEIA_CONFIG'] = {str(tmp_path / 'none.toml')!r}\n"
        f"os.environ['ALETHEIA_STACK_DIR'] = {str(tmp_path / 'stack')!r}\n"
        "sys.argv = ['aletheia', 'config']\n"
        "from aletheia.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
    )
    assert _heavy_loaded(code) == []


def test_help_lists_every_command_without_importing_it() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert f"  {name} " in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_listed_help_is_the_commands_own(name: str) -> None:
    """The line the root shows without importing a command is the one the command declares."""
    real = load(name, COMMANDS[name])
    assert real.name == name
    root = typer.main.get_command(app)
    listed = root.commands[name]  # type: ignore[attr-defined]
    assert listed.get_short_help_str(1000) == real.get_short_help_str(1000)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_answers_help(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"aletheia {name}" in result.output


def test_commands_added_to_datasets_from_other_modules_are_there() -> None:
    result = CliRunner().invoke(app, ["datasets", "--help"])
    assert result.exit_code == 0, result.output
    for name in ("add", "list", "stats", "split", "backfill-refs", "reprofile"):
        assert f"  {name} " in result.output
    split = CliRunner().invoke(app, ["datasets", "split", "--help"])
    assert split.exit_code == 0 and "aletheia datasets split" in split.output


def test_a_mistyped_command_is_suggested() -> None:
    result = CliRunner().invoke(app, ["rnus"])
    assert result.exit_code == 2
    assert "Did you mean 'runs'" in result.output
