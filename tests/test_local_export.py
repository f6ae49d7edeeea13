"""The local Firestore emulator's documents are saved every minute, not only on ``down``.

An emulator that dies (killed, out of memory) loses what it held since the
last save; the next ``up`` loads the newest copy and says how old it is.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from aletheia.cloud import layout
from aletheia.devstack import local

from helpers import wait_for


def test_up_after_the_emulator_died_loads_the_periodic_copy_and_says_how_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = local.StackConfig(stack_dir=tmp_path, ports=local.free_ports(), export_interval_s=1.0)
    said: list[str] = []
    state = local.up(cfg, echo=said.append)
    try:
        assert "Firestore starts empty (no saved data in this stack dir)" in said
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", cfg.address("firestore"))
        db = firestore.Client(project=cfg.cloud_project, credentials=AnonymousCredentials())
        db.document(layout.project("kept")).set({"desc": "written between saves"})
        written = time.time()

        def saved_since() -> bool:
            saved = local.saved_firestore_data(tmp_path)
            return saved is not None and saved.stat().st_mtime > written

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
