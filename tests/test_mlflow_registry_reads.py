"""MLflow's registry searches read a bounded number of times, whatever the model count.

``search_registered_models`` and ``search_model_versions`` once read each
model's versions one by one (N+1 round trips). They now read the models and
every model version of the project in one query each.
"""

from __future__ import annotations

from google.cloud import firestore

from aletheia.cloud import config, layout
from aletheia.integrations.mlflow.registry import AletheiaRegistryStore

from helpers import count_documents_read

PROJECT = "mlflowregreads"
MODELS, VERSIONS = 50, 3


def _seed(db: firestore.Client) -> None:
    """50 models of 3 versions each, written directly (registering them is not measured)."""
    batch = db.batch()
    for m in range(MODELS):
        name = f"m{m:02d}"
        batch.set(
            db.document(layout.model(PROJECT, name)),
            {
                "name": name,
                "project": PROJECT,
                "description": "",
                "tags": {"team": "a" if m % 2 else "b"},
                "aliases": {"champion": 2},
                "version_count": VERSIONS,
                "latest_version": VERSIONS,
                "created_at": firestore.SERVER_TIMESTAMP,
                "updated_at": firestore.SERVER_TIMESTAMP,
            },
        )
        for v in range(1, VERSIONS + 1):
            batch.set(
                db.document(layout.model_version(PROJECT, name, v)),
                {
                    "project": PROJECT,
                    "model": name,
                    "version": v,
                    "source": f"models:/m-{m}-{v}",
                    "tags": {},
                    "description": "",
                    "stage": "None",
                    "created_at": firestore.SERVER_TIMESTAMP,
                },
            )
    batch.commit()


def test_registry_searches_read_a_bounded_number_of_times(
    stack: config.Settings, db: firestore.Client
) -> None:
    _seed(db)
    store = AletheiaRegistryStore(f"aletheia://{PROJECT}")
    with count_documents_read(store.ms.db) as reads:
        models = store.search_registered_models(max_results=1000)
    assert len(models) == MODELS
    assert all(len(m.latest_versions) == 1 and m.aliases for m in models)
    round_trips = reads["run_query calls"] + reads["batch_get_documents calls"]
    assert round_trips <= 2, reads
    assert reads["run_query"] + reads["batch_get_documents"] == MODELS * (1 + VERSIONS)

    with count_documents_read(store.ms.db) as reads:
        versions = store.search_model_versions("name LIKE 'm%'", max_results=1000)
    assert len(versions) == MODELS * VERSIONS
    assert sorted(versions[0].aliases + versions[1].aliases) in ([], ["champion"])
    assert reads["run_query calls"] + reads["batch_get_documents calls"] <= 2, reads

    # A filtered, paged search reads no more.
    with count_documents_read(store.ms.db) as reads:
        one = store.search_registered_models("tags.team = 'a'", max_results=5)
    assert [m.name for m in one] == ["m01", "m03", "m05", "m07", "m09"]
    assert reads["run_query calls"] + reads["batch_get_documents calls"] <= 2, reads
