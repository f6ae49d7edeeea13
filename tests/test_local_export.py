"""The local Firestore emulator's documents are saved periodically, not only on ``down``.

An emulator that dies (killed, out of memory) loses what it held since the
last save; the next ``up`` loads the newest copy and says how old it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config, layout
from aletheia.cloud.config import LOCAL_CLOUD_PROJECT
from aletheia.devstack import autoexport, local
from aletheia.errors import ConfigError

from helpers import wait_for

runner = CliRunner()


def _saved_after(saved: autoexport.SavedExport | None, written: float) -> bool:
    """Whether the newest save is later than ``written``."""
    return saved is not None and saved.saved_at > written


def _emulator_export(data: Path, name: str) -> Path:
    """A complete export as the emulator leaves it in ``incoming/`` (metadata file last)."""
    export = data / "incoming" / name
    (export / "all_namespaces").mkdir(parents=True)
    (export / f"{name}.overall_export_metadata").write_bytes(b"metadata of " + name.encode())
    return export


def test_a_save_replaced_while_it_is_found_is_found_as_its_replacement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saver moves a newer copy into place and removes the older one right after
    ``saved_firestore_data`` listed the older one: what it returns is the newer, read whole
    (it used to return the older one's path, gone by the time anyone read it)."""
    data = tmp_path / local.FIRESTORE_DATA_DIR
    autoexport.install(data, _emulator_export(data, "firestore_export_1"))
    listed = Path.glob
    replaced: list[Path] = []

    def list_then_replace(self: Path, pattern: str, **kwargs: object) -> Iterator[Path]:
        found = list(listed(self, pattern, **kwargs))
        if pattern == "firestore_export_*" and not replaced:  # the saver's turn, once
            replaced.append(autoexport.install(data, _emulator_export(data, "firestore_export_2")))
        return iter(found)

    monkeypatch.setattr(Path, "glob", list_then_replace)
    saved = local.saved_firestore_data(tmp_path)
    monkeypatch.undo()

    (newer,) = replaced
    assert saved is not None and saved.directory == newer
    assert saved.metadata.read_bytes() == b"metadata of firestore_export_2"
    assert saved.saved_at == saved.metadata.stat().st_mtime


def test_up_after_the_emulator_died_loads_the_periodic_copy_and_says_how_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Firestore and its saver are all this needs: the other parts would only slow the starts.
    cfg = local.StackConfig(
        stack_dir=tmp_path, ports=local.free_ports(), export_interval_s=1.0, only=("firestore",)
    )
    said: list[str] = []
    state = local.up(cfg, echo=said.append)
    try:
        assert "Firestore starts empty (no saved data in this stack dir)" in said
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", cfg.address("firestore"))
        db = firestore.Client(project=cfg.cloud_project, credentials=AnonymousCredentials())
        db.document(layout.project("kept")).set({"desc": "written between saves"})
        written = time.time()

        def saved_since() -> bool:
            return _saved_after(local.saved_firestore_data(tmp_path), written)

        wait_for(saved_since, what="a periodic save without `down`")
        local.stop_part(state.parts["firestore"])  # dies: `down` never runs

        said.clear()
        local.up(cfg, echo=said.append)

        loaded = [m for m in said if m.startswith("Firestore loads the data saved")]
        assert len(loaded) == 1 and " ago (" in loaded[0], said
        doc = db.document(layout.project("kept")).get()
        assert doc.exists and doc.get("desc") == "written between saves"
    finally:
        local.down(tmp_path, keep_data=False, echo=lambda _m: None)


def test_export_every_is_a_flag_and_a_setting_and_status_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack_dir = tmp_path / "stack"
    ports = local.free_ports()
    args = ["local", "up", "--stack-dir", str(stack_dir), "--only", "firestore"]
    for part, port in ports.items():
        args += [f"--{part}-port", str(port)]
    monkeypatch.setenv("ALETHEIA_CONFIG", str(tmp_path / "config.toml"))
    status = ["local", "status", "--stack-dir", str(stack_dir)]
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{ports['firestore']}")
    db = firestore.Client(project=LOCAL_CLOUD_PROJECT, credentials=AnonymousCredentials())
    try:
        # 0: saved only by `down`, and no saver process runs.
        started = runner.invoke(app, [*args, "--export-every", "0"])
        assert started.exit_code == 0, started.output
        state = local.load_state(stack_dir)
        assert state is not None and state.exporter_pid is None
        shown = runner.invoke(app, status)
        assert shown.exit_code == 0, shown.output
        assert "saved only by `aletheia local down`" in " ".join(shown.output.split())
        db.document(layout.project("kept")).set({"desc": "saved by down"})
        assert local.saved_firestore_data(stack_dir) is None
        assert runner.invoke(app, ["local", "down", "--stack-dir", str(stack_dir)]).exit_code == 0
        assert local.saved_firestore_data(stack_dir) is not None

        # The setting, from the config file: every second.
        (tmp_path / "config.toml").write_text('[aletheia]\nexport_every = "1"\n', "utf-8")
        started = runner.invoke(app, args)
        assert started.exit_code == 0, started.output
        shown = runner.invoke(app, status)
        assert "saved every 1 s and by `aletheia local down`" in " ".join(shown.output.split())
        db.document(layout.project("kept")).set({"desc": "saved meanwhile"})
        written = time.time()

        def saved_since() -> bool:
            return _saved_after(local.saved_firestore_data(stack_dir), written)

        wait_for(saved_since, what="a save every second, without `down`")
    finally:
        local.down(stack_dir, keep_data=False, echo=lambda _m: None)


def test_export_every_must_be_seconds() -> None:
    with pytest.raises(ConfigError, match="export_every"):
        config.resolve({"export_every": "soon"})
    with pytest.raises(ConfigError, match="export_every"):
        config.resolve({"export_every": "-5"})
    assert config.resolve({"export_every": "0"}).export_every == 0.0
    assert config.resolve({}, env={}).export_every == 60.0
