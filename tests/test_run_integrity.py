"""A finished run is a record: another writer, signed in through the Auth emulator, cannot
rewrite its metrics, summary or result, and cannot turn the project's counters back."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from test_auth import as_user, rules_stack, uid_of

from aletheia.cloud import clients, config, layout, members
from aletheia.tracking.metastore import Metastore

__all__ = ["rules_stack"]  # the fixture, shared with test_auth


def test_a_writer_cannot_rewrite_a_finished_run_or_lower_counters(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    exper = Metastore("ledger", settings=ana).exper("e", git_policy="off")
    with exper.start_run() as run:
        for step in range(5):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    ref = run.ref
    assert (db.document(ref.path).get().to_dict() or {})["status"] == "finished"

    bob = as_user(rules_stack, tmp_path, "bob@example.com")
    members.add_member(db, "ledger", uid_of(bob), "writer")
    as_bob = clients.firestore_client(bob)
    forged = {"loss": {"last": 0.0, "count": 5, "min": 0.0, "max": 0.0}}
    attempts = {
        "summary": (ref.path, {"summary": forged}),
        "metrics": (ref.chunk_path("loss", 0), {"steps": [0], "values": [0.0]}),
        "result": (layout.result("ledger", "e", ref.run), {"metrics": {"loss": 0.0}}),
        "counter": (layout.experiment("ledger", "e"), {"next_run_id": 1}),
    }
    refused = []
    for what, (path, data) in attempts.items():
        with pytest.raises(gexc.PermissionDenied):
            as_bob.document(path).set(data, merge=True)
        refused.append(what)
    assert refused == list(attempts)
    stored = db.document(ref.path).get().to_dict() or {}
    assert stored["summary"]["loss"]["last"] == pytest.approx(0.2)
    # Bob's own runs are still his to write: the next run number is free.
    with Metastore("ledger", settings=bob).exper("e", git_policy="off").start_run() as mine:
        mine.log_metrics({"loss": 0.5}, step=0)
    assert mine.id != run.id
