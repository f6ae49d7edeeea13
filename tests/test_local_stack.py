"""`aletheia local up | down | status` against real processes."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aletheia.cli import app, main
from aletheia.cloud import clients, config
from aletheia.devstack import commands, local, processes
from aletheia.errors import ConfigError, LocalStackError

runner = CliRunner()


def _listening(ports: dict[str, int]) -> list[str]:
    return [part for part, port in ports.items() if processes.port_in_use("127.0.0.1", port)]


def _group_alive(pgid: int) -> bool:
    members = processes.group_members(pgid) or []
    return any(not processes.is_zombie(pid) for pid in members)


def test_up_twice_reuses_the_running_stack(stack_state: local.StackState) -> None:
    stack_dir = os.environ["ALETHEIA_STACK_DIR"]
    result = runner.invoke(app, ["local", "up", "--stack-dir", stack_dir])
    assert result.exit_code == 0, result.output
    assert "reusing the local stack" in result.output
    assert local.load_state(Path(stack_dir)) == stack_state  # same pids, nothing restarted
    assert "export FIRESTORE_EMULATOR_HOST=" in result.output


def test_status_reports_every_part_healthy(stack_state: local.StackState) -> None:
    result = runner.invoke(
        app, ["local", "status", "--stack-dir", os.environ["ALETHEIA_STACK_DIR"]]
    )
    assert result.exit_code == 0, result.output
    # The test session's stack runs the optional Auth emulator too.
    assert stack_state.part_names == (*local.PARTS, "auth")
    for part in stack_state.part_names:
        assert part in result.output
    assert result.output.count("healthy") == len(stack_state.part_names)


@pytest.mark.slow
def test_down_leaves_no_process_and_frees_every_port(tmp_path: Path) -> None:
    ports = local.free_ports()
    state = local.up(local.StackConfig(stack_dir=tmp_path, ports=ports), echo=lambda _m: None)
    assert sorted(_listening(ports)) == sorted(local.PARTS)
    pids = [part.pid for part in state.parts.values()]

    result = runner.invoke(app, ["local", "down", "--stack-dir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert [pid for pid in pids if _group_alive(pid)] == []
    assert _listening(ports) == []
    assert local.load_state(tmp_path) is None
    status = runner.invoke(app, ["local", "status", "--stack-dir", str(tmp_path)])
    assert status.exit_code == 1


def test_port_in_use_names_the_part_and_starts_nothing(tmp_path: Path) -> None:
    ports = local.free_ports()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["storage"]))
        squatter.listen()
        with pytest.raises(LocalStackError) as info:
            local.up(local.StackConfig(stack_dir=tmp_path, ports=ports), echo=lambda _m: None)
    assert info.value.part == "storage"
    assert str(ports["storage"]) in str(info.value)
    assert local.load_state(tmp_path) is None
    assert _listening({k: v for k, v in ports.items() if k != "storage"}) == []


def test_missing_gcloud_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(LocalStackError, match="gcloud") as info:
        local.up(
            local.StackConfig(stack_dir=tmp_path, ports=local.free_ports()), echo=lambda _m: None
        )
    assert "Google Cloud SDK" in (info.value.hint or "")


def test_cli_reports_stack_errors_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["aletheia", "local", "up", "--stack-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == LocalStackError.exit_code


@pytest.mark.slow
def test_a_part_that_fails_to_start_is_named_and_nothing_is_left_running(tmp_path: Path) -> None:
    broken = tmp_path / "broken_main.py"
    broken.write_text("this is not python\n")
    ports = local.free_ports()
    cfg = local.StackConfig(stack_dir=tmp_path / "stack", ports=ports, function_source=broken)

    with pytest.raises(LocalStackError) as info:
        local.up(cfg, echo=lambda _m: None)

    assert info.value.part == "function"
    assert "function.log" in (info.value.hint or "")
    assert _listening(ports) == []  # the emulators started before it were stopped
    assert local.load_state(tmp_path / "stack") is None


def _db_of(state: local.StackState) -> Any:
    """A client on this stack's emulator (never the session's, whatever the environment)."""
    host = state.env["FIRESTORE_EMULATOR_HOST"]
    settings = config.resolve({"firestore_emulator_host": host, "identity": "server"})
    return clients.firestore_client(settings)


@pytest.mark.slow
def test_firestore_data_survives_down_and_up_unless_discarded(tmp_path: Path) -> None:
    ports = local.free_ports()

    def up() -> local.StackState:
        # Firestore alone holds the data: the other parts would only slow each start.
        cfg = local.StackConfig(stack_dir=tmp_path, ports=ports, only=("firestore",))
        return local.up(cfg, echo=lambda _m: None)

    first = up()
    assert _listening(ports) == ["firestore"]  # only the part asked for runs
    assert local.status(tmp_path) == {"firestore": "healthy"}
    assert "STORAGE_EMULATOR_HOST" not in first.env  # no address where nothing answers
    _db_of(first).document("Projects/kept").set({"n": 1})
    assert runner.invoke(app, ["local", "down", "--stack-dir", str(tmp_path)]).exit_code == 0
    assert local.saved_firestore_data(tmp_path) is not None
    assert _db_of(up()).document("Projects/kept").get().to_dict() == {"n": 1}

    discard = ["local", "down", "--discard", "--stack-dir", str(tmp_path)]
    assert runner.invoke(app, discard).exit_code == 0
    assert local.saved_firestore_data(tmp_path) is None
    try:
        assert not _db_of(up()).document("Projects/kept").get().exists
    finally:
        local.down(tmp_path, keep_data=False, echo=lambda _m: None)
    assert _listening(ports) == []


@pytest.mark.parametrize(
    ("only", "said"),
    [(("firestore", "emulator"), "unknown local stack part"), (("storage",), "also need pubsub")],
)
def test_only_names_known_parts_with_what_they_need(
    tmp_path: Path,
    only: tuple[str, ...],
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigError, match=said):
        local.StackConfig(stack_dir=tmp_path, only=only)
    argv = ["aletheia", "local", "up", "--stack-dir", str(tmp_path), "--only", ",".join(only)]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == ConfigError.exit_code
    captured = capsys.readouterr()
    assert said in " ".join((captured.out + captured.err).split())
    assert local.load_state(tmp_path) is None


def test_emulators_start_from_the_sdk_launchers_or_through_gcloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = local.StackConfig(stack_dir=tmp_path, ports=local.free_ports())
    # The installed SDK: its launchers, without gcloud's own Python start-up in front.
    firestore_cmd, _ = commands.command(cfg, "firestore")
    pubsub_cmd, _ = commands.command(cfg, "pubsub")
    assert firestore_cmd[0].endswith(commands.FIRESTORE_LAUNCHER)
    assert f"--port={cfg.ports['firestore']}" in firestore_cmd
    assert "--database-mode=firestore-native" in firestore_cmd
    assert pubsub_cmd[0].endswith(commands.PUBSUB_LAUNCHER)
    # A gcloud whose SDK is laid out otherwise: gcloud starts them.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "gcloud").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "gcloud").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    firestore_cmd, _ = commands.command(cfg, "firestore")
    assert firestore_cmd[:4] == ["gcloud", "emulators", "firestore", "start"]
    assert commands.command(cfg, "pubsub")[0][:4] == ["gcloud", "beta", "emulators", "pubsub"]
