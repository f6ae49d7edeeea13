"""A run started offline checks its project when its writer reconnects, as an online start does.

The training process itself (not only ``aletheia sync``) writes on
reconnect: with server credentials it must not write into a project a
signed-in user registered meanwhile under the team's name. It sends
nothing, says what to do, and its journal keeps everything for a later
``aletheia sync``, which refuses the same way and leaves the journal byte
for byte as it was. The Auth emulator and the rules-enforcing Firestore
emulator are the session's, real.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
from google.cloud import firestore
from test_auth import as_user, rules_stack, uid_of
from test_faults import stored_points

from aletheia.cloud import clients, config, layout, members
from aletheia.devstack import local
from aletheia.errors import ConflictError
from aletheia.tracking import direct, journal, sync
from aletheia.tracking.metastore import Metastore

__all__ = ["rules_stack"]  # the fixture, shared with test_auth

PROJECT = "faults"  # the project test_faults.stored_points reads


def test_offline_started_run_refuses_a_project_squatted_before_it_reconnects(
    rules_stack: config.Settings,
    stack_state: local.StackState,
    db: firestore.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(direct, "CREATE_TIMEOUT_S", 2.0)
    cache = tmp_path / "cache"
    team = config.resolve({"identity": "server", "cache_dir": str(cache)})
    firestore_part = stack_state.parts["firestore"]
    local.suspend_part(firestore_part)  # unreachable: the team's training starts offline
    try:
        # Flushes only when asked: the reconnect happens after Eve's move, not before.
        ms = Metastore(
            PROJECT, settings=team, flush_interval_s=3600.0, final_retry_s=1.0, sync_on_start=False
        )
        exper = ms.exper("train", git_policy="off")
        assert not exper.online
        run = exper.start_run(run_id="r1", params={"lr": 0.1})
        for i in range(1_500):
            run.add_metric("loss", float(i))
    finally:
        local.resume_part(firestore_part)

    # Meanwhile Eve registers the team's project name first.
    eve = as_user(rules_stack, tmp_path, "eve@example.com")
    # Right after the emulator thaws, an attempt of Eve's can land and still be retried
    # (then "exists"): what counts is that the project is hers, and nothing else is there.
    with contextlib.suppress(ConflictError):
        members.create_project(clients.firestore_client(eve), PROJECT, uid_of(eve))
    squatted = db.document(layout.project(PROJECT)).get().to_dict() or {}
    assert squatted["members"] == {uid_of(eve): "owner"}, squatted
    assert members.SERVER_MANAGED not in squatted

    with caplog.at_level(logging.WARNING, logger="aletheia"):
        assert not run.flush()  # Firestore answers again: the project is checked first
        for i in range(1_500, 2_000):
            run.add_metric("loss", float(i))
        assert not run.finish()
    said = caplog.text
    assert f"project {PROJECT!r} was created by a signed-in user" in said, said
    assert "ALETHEIA_OWNER" in said and "aletheia sync" in said  # what to do
    assert str(run.journal.path) in said
    experiments = db.collection(layout.experiments(PROJECT))
    assert list(experiments.limit(1).stream()) == []  # nothing written for Eve to read
    state = journal.read(run.journal.path)
    assert state.point_count == 2_000 and not state.synced  # everything kept
    assert state.merged_fields()["status"] == "finished"

    # `aletheia sync` refuses it the same way, and leaves the journal as it is.
    before = run.journal.path.read_bytes()
    (refused,) = sync.sync_all(team)
    assert refused.action.startswith("refused: "), refused.action
    assert run.journal.path.read_bytes() == before
    assert list(experiments.limit(1).stream()) == []

    # Once the project names the team's owner as a writer, the same journal syncs whole.
    members.add_member(db, PROJECT, "u-team", "writer")
    ours = config.resolve({"identity": "server", "cache_dir": str(cache), "owner": "u-team"})
    (done,) = sync.sync_all(ours)
    assert done.action == "synced", done.action
    assert stored_points(db, "train", "r1", "loss") == [float(i) for i in range(2_000)]
