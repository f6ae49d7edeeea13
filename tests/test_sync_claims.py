"""A run started offline claims its project when it reaches Firestore, like an online start.

An online start checks the project first (``members.ensure_project``): server
credentials never write into a project a signed-in user registered first
under the team's name. A run that started while Firestore was unreachable
has not been checked; ``aletheia sync`` must check before writing, and
refuse a squatted project with the same clear error, keeping the journal
whole.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.cloud import firestore
from test_auth import as_user, rules_stack, uid_of
from test_faults import stored_points
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import clients, config, layout, members
from aletheia.devstack import local
from aletheia.tracking import direct, journal, sync
from aletheia.tracking.metastore import Metastore

__all__ = ["rules_stack"]  # the fixture, shared with test_auth

PROJECT = "faults"  # the project test_faults.stored_points reads
runner = CliRunner()


def _offline_journal(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished run of PROJECT that never reached Firestore: only its journal has it."""
    monkeypatch.setattr(direct, "CREATE_TIMEOUT_S", 2.0)
    cfg = local.StackConfig(stack_dir=tmp_path / "private", ports=local.free_ports())
    part = local.start_part(cfg, "firestore")  # a Firestore this run never gets to write to
    try:
        settings = config.resolve(
            {
                "firestore_emulator_host": part.address,
                "cache_dir": str(cache),
                "identity": "server",
            }
        )
        ms = Metastore(PROJECT, settings=settings, final_retry_s=1.0, sync_on_start=False)
        exper = ms.exper("train", git_policy="off")
        local.suspend_part(part)  # unreachable from here on: the run starts offline
        ms.store.commit_timeout_s = 1.0
        run = exper.start_run(run_id="r1", params={"lr": 0.1})
        for i in range(1_500):
            run.add_metric("loss", float(i))
        assert not run.finish()  # ended offline: the journal holds everything
    finally:
        local.resume_part(part)
        local.stop_part(part)
    state = journal.read(run.journal.path)
    assert state.point_count == 1_500 and not state.synced
    return run.journal.path


def test_sync_of_an_offline_run_refuses_a_project_squatted_by_a_user(
    rules_stack: config.Settings,
    db: firestore.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"
    path = _offline_journal(tmp_path, cache, monkeypatch)
    before = path.read_bytes()
    # Meanwhile Eve registers the team's project name first.
    eve = as_user(rules_stack, tmp_path, "eve@example.com")
    members.create_project(clients.firestore_client(eve), PROJECT, uid_of(eve))

    team = config.resolve({"identity": "server", "cache_dir": str(cache)})
    (result,) = sync.sync_all(team)

    assert result.action.startswith("refused: "), result.action
    assert f"project {PROJECT!r} was created by a signed-in user" in result.action
    assert "ALETHEIA_OWNER" in result.action  # what to do
    assert path.read_bytes() == before  # the journal is intact: nothing lost, nothing settled
    experiments = db.collection(layout.experiments(PROJECT))
    assert list(experiments.limit(1).stream()) == []  # no run written for Eve to read

    monkeypatch.setenv("ALETHEIA_CACHE_DIR", str(cache))
    monkeypatch.setenv("ALETHEIA_IDENTITY", "server")
    cli = runner.invoke(app, ["sync"])
    assert cli.exit_code == 1, cli.output
    assert "refused" in cli.output and "not settled" in cli.output
    assert list(experiments.limit(1).stream()) == []

    # Once the project names the team's owner as a writer, the same journal syncs whole.
    members.add_member(db, PROJECT, "u-team", "writer")
    ours = config.resolve({"identity": "server", "cache_dir": str(cache), "owner": "u-team"})
    (done,) = sync.sync_all(ours)
    assert done.action == "synced", done.action
    assert stored_points(db, "train", "r1", "loss") == [float(i) for i in range(1_500)]
    assert journal.read(path).synced
