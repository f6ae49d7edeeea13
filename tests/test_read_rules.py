"""The read API as a signed-in Firebase user: the rules judge every read it makes.

A viewer reads runs, orders them on the server (every query the reader runs,
status, model and metric orderings included) and reads metric histories; a
user of no role reads nothing; listing every project is for server
credentials, and a user is told so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from test_auth import as_user, rules_stack, uid_of

from aletheia.cloud import config, members
from aletheia.errors import AccessDeniedError
from aletheia.tracking.metastore import Metastore

__all__ = ["rules_stack"]  # the fixture, shared with test_auth

PROJECT = "readrules"


def test_a_viewer_reads_what_the_api_offers_and_a_stranger_nothing(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    exper = Metastore(PROJECT, settings=ana, flush_interval_s=60).exper("e", git_policy="off")
    for acc in (0.2, 0.8, 0.5):
        with exper.start_run(model="mlp", hyper_params={"lr": acc}) as run:
            run.log_metrics({"acc": acc / 2}, step=0)
            run.log_metrics({"acc": acc}, step=1)
    bob = as_user(rules_stack, tmp_path, "bob@example.com")
    members.add_member(db, PROJECT, uid_of(bob), "viewer")

    reader = Metastore(PROJECT, settings=bob)
    assert [e.name for e in reader.experiments()] == ["e"]
    view = reader.experiment("e")
    assert [r.id for r in view.runs(order_by="metrics.acc DESC", limit=2)] == ["2", "3"]
    assert [r.id for r in view.runs(status="finished", limit=2)] == ["3", "2"]
    assert [r.id for r in view.runs(status="crashed")] == []
    assert [r.id for r in view.runs(model="mlp", limit=1)] == ["3"]
    run = view.run("2")
    assert [p.value for p in run.metric_history("acc")] == [0.4, 0.8]
    with pytest.raises(AccessDeniedError, match="server credentials"):
        reader.projects()

    carol = as_user(rules_stack, tmp_path, "carol@example.com")
    with pytest.raises(gexc.PermissionDenied):
        Metastore(PROJECT, settings=carol).experiment("e").runs()
