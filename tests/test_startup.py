"""Start-up: importing aletheia and asking the CLI for help load no cloud client or data library;
listing runs loads the Firestore read path and nothing else.

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
from aletheia.cloud import config
from aletheia.tracking.metastore import Metastore

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


#: What ``aletheia runs list`` may not import: other concerns' libraries and modules (their
#: prefixes). Reading runs needs the Firestore client, the read API and a table, no more.
NOT_FOR_READING = (
    "google.cloud.storage",
    "pyarrow",
    "numpy",
    "pandas",
    "duckdb",
    "mlflow",
    "aletheia.data",
    "aletheia.stats",
    "aletheia.integrations",
    "aletheia.tracking.compose",
    "aletheia.tracking.envinfo",
    "aletheia.tracking.reproduce",
    "aletheia.tracking.metastore",
    "aletheia.tracking.journal",
    "aletheia.tracking.sync",
)


def _heavy_loaded(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """Run ``code`` in a fresh interpreter; the ``heavy`` modules (or packages: every module
    under them counts) it left loaded."""
    probe = (
        "import atexit, json, sys\n"
        f"heavy = {heavy!r}\n"
        "loaded = lambda: sorted(m for m in sys.modules if m in heavy or m.startswith("
        "tuple(h + '.' for h in heavy)))\n"
        "atexit.register(lambda: print(json.dumps(loaded())))\n"
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


def test_runs_list_loads_only_the_read_path(stack: config.Settings) -> None:
    """``runs list`` (the command people run most) imports Firestore's client and the read
    API; not the environment capture of ``runs env``, the storage client or data libraries."""
    exper = Metastore("startup", flush_interval_s=60).exper("e", git_policy="off")
    for _ in range(2):
        with exper.start_run():
            pass
    code = (
        "sys.argv = ['aletheia', 'runs', 'list', '-p', 'startup', '-e', 'e', '-n', '1', '--json']\n"
        "from aletheia.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'google.cloud.firestore' in sys.modules\n"
    )
    assert _heavy_loaded(code, NOT_FOR_READING) == []


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
