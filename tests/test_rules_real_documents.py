"""The rules accept the documents aletheia itself writes.

``firestore.rules`` validates document shapes (required fields, types). The
tracking client writes with server credentials, which bypass the rules, so a
drift between the two would only show when a Firebase user (a web client, a
teammate in the console) writes the same shape. Here a real tracked run is
written with ``Metastore``; a writer then re-creates each document it produced
over REST, field for field, and the rules must allow every one.
"""

from __future__ import annotations

from google.cloud import firestore
from test_rules import RULES_FILE, Rest, load_rules

from aletheia import Metastore, config, layout, members

WRITER = "u-writer"


def test_documents_written_by_metastore_pass_the_rules(
    stack: config.Settings, db: firestore.Client
) -> None:
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))
    ms = Metastore("shapes", settings=stack)
    exper = ms.exper("exp", git_policy="off")
    with exper.start_run(fold=1) as run:
        run.set_hyper_params({"lr": 0.1, "layers": [64, 32], "dropout": None})
        for step in range(3):
            run.log_metrics({"train/loss": 1.0 / (step + 1), "acc": 0.5}, step=step)
    members.add_member(db, "shapes", WRITER, "writer")

    run_path = layout.run("shapes", "exp", run.id)
    chunks = list(db.collection(layout.metrics("shapes", "exp", run.id)).stream())
    assert chunks, "the run logged metric chunks"
    docs = {
        layout.experiment("shapes", "exp"): db.document(layout.experiment("shapes", "exp")),
        run_path: db.document(run_path),
        **{chunk.reference.path: chunk.reference for chunk in chunks},
    }
    rest = Rest(stack)
    refused = []
    for path, ref in docs.items():
        data = ref.get().to_dict()
        assert data, path
        response = rest.call(WRITER, "create", f"{path}-copy", data)
        if response.status_code != 200:
            refused.append(f"{path}: {response.status_code} {response.text[:300]}")
    assert not refused, "\n".join(refused)
    # The finished run as the client left it may be rewritten unchanged by a writer.
    finished = db.document(run_path).get().to_dict()
    assert finished["status"] == "finished"
    assert rest.call(WRITER, "update", run_path, finished).status_code == 200
