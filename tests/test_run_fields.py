"""Field updates of a run: the document never depends on when the background writer flushes."""

from __future__ import annotations

from typing import Any

from google.cloud import firestore

from aletheia.cloud import config, layout
from aletheia.tracking.metastore import Metastore

PROJECT = "runfields"


def _updates(run: Any, flush_between: bool) -> None:
    run.set_model("resnet", version=1)
    if flush_between:
        run.flush()
    run.set_model(stage="fine-tune")  # a partial map: merged into `model`, as Firestore does
    if flush_between:
        run.flush()
    run.set_hyper_params({"lr": 0.1})
    run.set_hyper_params({"epochs": 3})


def test_nested_maps_merge_within_one_flush_as_across_flushes(
    stack: config.Settings, db: firestore.Client
) -> None:
    # A flush interval far longer than the test: only explicit flushes send anything.
    exper = Metastore(PROJECT, flush_interval_s=3600.0).exper("fields", git_policy="off")
    docs = []
    for flush_between in (True, False):
        with exper.start_run() as run:
            _updates(run, flush_between)
            run.flush()
            doc = db.document(layout.run(PROJECT, "fields", run.id)).get().to_dict() or {}
            assert run.fields["model"] == doc["model"]  # the run's own view matches Firestore
            docs.append({k: doc[k] for k in ("model", "hyper_params")})
    assert docs[0] == docs[1]
    assert docs[1]["model"] == {"name": "resnet", "version": 1, "stage": "fine-tune"}
    assert docs[1]["hyper_params"] == {"lr": 0.1, "epochs": 3}
