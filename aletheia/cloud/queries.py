"""Every Firestore query the client runs, defined in one place.

Production Firestore refuses a query that needs a composite index it does
not have; the emulator does not. Keeping every query here lets a test
(``tests/test_indexes.py``) check each one against ``firestore.indexes.json``,
so a missing index fails our tests rather than a user's run. Each function
returns an unexecuted ``Query``; callers stream it.

Adding a query (the convention the index test relies on):

* write a public function here whose first parameter is ``db``
  (a ``firestore.Client``) and that returns the unexecuted ``Query``;
  build paths with :mod:`aletheia.cloud.layout`, never by hand;
* decorate it with ``@client_query(...)``, passing example values for its
  other parameters (``@client_query(p="proj", e="exp", status="running")``);
  parameters with defaults need none, and without the decorator the test
  makes up values from the annotations (``str`` -> ``"example"``, ``int`` -> 1);
* if the test says an index is missing, add the index it prints to
  ``firestore.indexes.json`` (terraform deploys that file as it is).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from google.cloud import firestore
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.query import Query

from aletheia.cloud import layout

_F = TypeVar("_F", bound=Callable[..., Any])

#: ``{function name: example keyword arguments}`` of every decorated query.
CLIENT_QUERIES: dict[str, Mapping[str, Any]] = {}


def client_query(**example: Any) -> Callable[[_F], _F]:
    """Register a query function, with example arguments for the index test."""

    def register(func: _F) -> _F:
        CLIENT_QUERIES[func.__name__] = dict(example)
        return func

    return register


# --------------------------------------------------------------------------- runs


@client_query(p="proj", e="exp", status="running")
def runs_by_status(
    db: firestore.Client, p: str, e: str, status: str | list[str], limit: int | None = None
) -> Query:
    """Runs of an experiment with one stored status (or any of a list), newest start first.

    Needs the composite index ``Runs (status ASC, started_at DESC)`` (``in`` is
    an equality to Firestore's indexes).
    """
    match = FieldFilter("status", "==", status)
    if isinstance(status, list):
        match = FieldFilter("status", "in", status)
    query = (
        db.collection(layout.runs(p, e))
        .where(filter=match)
        .order_by("started_at", direction=Query.DESCENDING)
    )
    return query.limit(limit) if limit else query


@client_query(p="proj", e="exp", metric="val/loss")
def runs_by_metric(
    db: firestore.Client,
    p: str,
    e: str,
    metric: str,
    *,
    descending: bool = True,
    limit: int | None = None,
) -> Query:
    """Runs of an experiment ordered by the last value of ``metric`` (a leaderboard).

    Ordering on one field, even a map subfield like ``summary.<metric>.last``,
    is served by Firestore's automatic single-field indexes, so this needs no
    composite index for any metric. Combining it with an equality filter
    (say ``status == finished``) would need one composite index *per metric
    name*, which cannot be declared ahead of time: filter those client-side.
    Runs without the metric are left out, as Firestore does for any ordering.
    """
    path = FieldPath("summary", metric, "last").to_api_repr()
    direction = Query.DESCENDING if descending else Query.ASCENDING
    query = db.collection(layout.runs(p, e)).order_by(path, direction=direction)
    return query.limit(limit) if limit else query


@client_query(p="proj", e="exp", dataset_ref="mnist@v3")
def runs_using_dataset(db: firestore.Client, p: str, e: str, dataset_ref: str) -> Query:
    """Runs of an experiment that used a dataset version (``name@version`` in
    ``dataset_refs``), newest start first.

    Needs the composite index ``Runs (dataset_refs CONTAINS, started_at DESC)``.
    """
    return (
        db.collection(layout.runs(p, e))
        .where(filter=FieldFilter("dataset_refs", "array_contains", dataset_ref))
        .order_by("started_at", direction=Query.DESCENDING)
    )


@client_query(p="proj", e="exp")
def runs_by_start(db: firestore.Client, p: str, e: str, *, descending: bool = True) -> Query:
    """Runs of an experiment by start time (newest first by default); single-field index."""
    direction = Query.DESCENDING if descending else Query.ASCENDING
    return db.collection(layout.runs(p, e)).order_by("started_at", direction=direction)


@client_query(p="proj", e="exp")
def runs_by_number(db: firestore.Client, p: str, e: str, *, descending: bool = False) -> Query:
    """Numbered runs of an experiment (1, 2, 3 ...) in order; single-field index.

    Runs without a number (explicit or time-based ids, MLflow's) are left out.
    """
    direction = Query.DESCENDING if descending else Query.ASCENDING
    return db.collection(layout.runs(p, e)).order_by("number", direction=direction)


@client_query(p="proj", e="exp")
def runs_by_id(db: firestore.Client, p: str, e: str, *, descending: bool = False) -> Query:
    """Every run of an experiment in run id order; single-field index.

    Ordered on the ``run`` field every run document carries (its own id), not on
    ``__name__``: Firestore refuses descending key scans.
    """
    direction = Query.DESCENDING if descending else Query.ASCENDING
    return db.collection(layout.runs(p, e)).order_by("run", direction=direction)


@client_query(p="proj", e="exp", model="resnet18")
def runs_by_model(db: firestore.Client, p: str, e: str, model: str) -> Query:
    """Runs of an experiment whose model is named ``model``, newest start first.

    Needs the composite index ``Runs (model.name ASC, started_at DESC)``.
    """
    return (
        db.collection(layout.runs(p, e))
        .where(filter=FieldFilter("model.name", "==", model))
        .order_by("started_at", direction=Query.DESCENDING)
    )


@client_query(p="proj", e="exp", r="3", key="val/loss")
def metric_chunks_of_key(db: firestore.Client, p: str, e: str, r: str, key: str) -> Query:
    """The chunk documents of one metric of a run (the ``key`` field; single-field)."""
    return db.collection(layout.metrics(p, e, r)).where(filter=FieldFilter("key", "==", key))


# --------------------------------------------------------------------------- artifacts


@client_query(p="proj", e="exp", name="model")
def artifact_versions_newest_first(db: firestore.Client, p: str, e: str, name: str) -> Query:
    """Versions of an artifact, newest first (single-field: no composite index)."""
    return db.collection(layout.artifact_versions(p, e, name)).order_by(
        "seq", direction=Query.DESCENDING
    )


@client_query(p="proj", e="exp", name="model", run="3")
def artifact_versions_of_run(db: firestore.Client, p: str, e: str, name: str, run: str) -> Query:
    """Versions of an artifact that run ``run`` saved, newest first.

    Needs the composite index ``Versions (run ASC, seq DESC)``.
    """
    return (
        db.collection(layout.artifact_versions(p, e, name))
        .where(filter=FieldFilter("run", "==", layout.validate_id(run, "run id")))
        .order_by("seq", direction=Query.DESCENDING)
    )


@client_query(p="proj", e="exp")
def logged_models_of_experiment(db: firestore.Client, p: str, e: str) -> Query:
    """MLflow logged models of experiment ``e`` (one equality: no composite index)."""
    return db.collection(layout.logged_models(p)).where(
        filter=FieldFilter("experiment", "==", layout.validate_id(e, "experiment name"))
    )


@client_query(p="proj", run="0" * 32)
def logged_models_of_run(db: firestore.Client, p: str, run: str) -> Query:
    """MLflow logged models run ``run`` logged (one equality: no composite index)."""
    return db.collection(layout.logged_models(p)).where(
        filter=FieldFilter("source_run_id", "==", layout.validate_id(run, "run id"))
    )


# --------------------------------------------------------------------------- datasets


@client_query(p="proj", name="mnist")
def dataset_versions_newest_first(db: firestore.Client, p: str, name: str) -> Query:
    """Versions of a dataset, newest first (single-field: no composite index)."""
    return db.collection(layout.dataset_versions(p, name)).order_by(
        "created_at", direction=Query.DESCENDING
    )


@client_query(p="proj", name="mnist", version="v3")
def project_runs_using_dataset(db: firestore.Client, p: str, name: str, version: str) -> Query:
    """Runs of every experiment of project ``p`` that used ``name@version``.

    A collection-group query over ``Runs``, kept inside the project by the
    ``project`` field every run document carries (the rules check the
    querying user's membership of that project). Needs the collection-group
    index ``Runs (project ASC, dataset_refs CONTAINS)``.
    """
    return (
        db.collection_group(layout.RUNS)
        .where(filter=FieldFilter("project", "==", layout.validate_id(p, "project name")))
        .where(
            filter=FieldFilter("dataset_refs", "array_contains", layout.dataset_ref(name, version))
        )
    )


@client_query(p="proj", sha256="0" * 64)
def dataset_versions_with_file(db: firestore.Client, p: str, sha256: str) -> Query:
    """Entries of datasets' latest manifests (``Datasets/*/files``) holding these bytes.

    Each entry has ``dataset``, ``path`` and ``version`` (the version that
    introduced this content at this path). Needs the collection-group index
    ``files (project ASC, kind ASC, sha256 ASC)``.
    """
    return (
        db.collection_group(layout.DATASET_FILES)
        .where(filter=FieldFilter("project", "==", layout.validate_id(p, "project name")))
        .where(filter=FieldFilter("kind", "==", "dataset"))
        .where(filter=FieldFilter("sha256", "==", layout.validate_sha256(sha256)))
    )


# --------------------------------------------------------------------------- models


@client_query(p="proj", name="clf")
def model_versions_newest_first(db: firestore.Client, p: str, name: str) -> Query:
    """Versions of a registered model, newest first (single-field: no composite index)."""
    return db.collection(layout.model_versions(p, name)).order_by(
        "version", direction=Query.DESCENDING
    )


@client_query(p="proj")
def models_by_name(db: firestore.Client, p: str) -> Query:
    """Registered models of a project, by name (single-field: no composite index)."""
    return db.collection(layout.models(p)).order_by("name")


@client_query(p="proj")
def model_versions_of_project(db: firestore.Client, p: str) -> Query:
    """Every version of every registered model of project ``p``, by model and number.

    A collection-group query over ``Versions``, kept inside the project by the
    ``project`` field every model version carries; ordering on ``model``
    leaves out artifact and dataset versions (they have no such field). Needs
    the collection-group index ``Versions (project ASC, model ASC, version ASC)``.
    """
    return (
        db.collection_group(layout.MODEL_VERSIONS)
        .where(filter=FieldFilter("project", "==", layout.validate_id(p, "project name")))
        .order_by("model")
        .order_by("version")
    )


@client_query(p="proj", name="mnist", version="v3")
def model_versions_using_dataset(db: firestore.Client, p: str, name: str, version: str) -> Query:
    """Model versions of every model of project ``p`` trained on ``name@version``.

    A collection-group query over ``Versions`` (model versions are the only
    ones with ``dataset_refs``), kept inside the project by the ``project``
    field every model version carries. Needs the collection-group index
    ``Versions (project ASC, dataset_refs CONTAINS)``.
    """
    return (
        db.collection_group(layout.MODEL_VERSIONS)
        .where(filter=FieldFilter("project", "==", layout.validate_id(p, "project name")))
        .where(
            filter=FieldFilter("dataset_refs", "array_contains", layout.dataset_ref(name, version))
        )
    )


# --------------------------------------------------------------------------- blobs


@client_query(p="proj", sha256="0" * 64, kind="model")
def blob_refs_of_kind(db: firestore.Client, p: str, sha256: str, kind: str) -> Query:
    """Holders of one kind of blob ``sha256`` (one equality: no composite index)."""
    return db.collection(layout.blob_refs(p, layout.validate_sha256(sha256))).where(
        filter=FieldFilter("kind", "==", kind)
    )


# --------------------------------------------------------------------------- invitations


#: Queries of one project that firestore.rules allow only to its owners (the others: to members).
OWNER_QUERIES = frozenset({"invites_of_project"})


@client_query(p="proj")
def invites_of_project(db: firestore.Client, p: str) -> Query:
    """A project's invitations, soonest expiry first (single-field: no composite index)."""
    return db.collection(layout.invites(p)).order_by("expires_at")


@client_query(email="ana@example.com", now=datetime(2026, 1, 1, tzinfo=timezone.utc))
def invites_to(db: firestore.Client, email: str, now: datetime) -> Query:
    """Invitations to ``email`` in every project, not expired at ``now``.

    A collection-group query selecting on the address, which the rules require of
    the invitee (the dashboard's projects page asks the same). Needs the
    collection-group index ``Invites (email ASC, expires_at ASC)``.
    """
    return (
        db.collection_group(layout.INVITES)
        .where(filter=FieldFilter("email", "==", layout.validate_email(email)))
        .where(filter=FieldFilter("expires_at", ">", now))
    )


# --------------------------------------------------------------------------- collection groups


def under_project(snaps: Iterable[DocumentSnapshot], p: str) -> Iterator[DocumentSnapshot]:
    """The results of a collection-group query stored under project ``p``, only.

    Such queries select on the ``project`` field a document carries. The
    rules make a signed-in user's documents name the project they are stored
    in, but server credentials bypass the rules: a document elsewhere naming
    ``p`` (forged, or written before the rules said so) would otherwise join
    ``p``'s lineage and hold its blobs against ``datasets rm``.
    """
    prefix = layout.project(p) + "/"
    return (snap for snap in snaps if snap.reference.path.startswith(prefix))


# --------------------------------------------------------------------------- files


@client_query(p="proj", before=datetime(2026, 1, 1, tzinfo=timezone.utc))
def files_with_expired_lease(
    db: firestore.Client, p: str, before: datetime, limit: int | None = None
) -> Query:
    """``Files`` of project ``p`` still ``processing`` whose lease ended before ``before``.

    Oldest lease first. Needs the composite index
    ``Files (status ASC, lease_until ASC)``.
    """
    query = (
        db.collection(layout.files(p))
        .where(filter=FieldFilter("status", "==", "processing"))
        .where(filter=FieldFilter("lease_until", "<", before))
        .order_by("lease_until")
    )
    return query.limit(limit) if limit else query


@client_query(before=datetime(2026, 1, 1, tzinfo=timezone.utc))
def all_files_with_expired_lease(
    db: firestore.Client, before: datetime, limit: int | None = None
) -> Query:
    """``Files`` of every project still ``processing`` whose lease ended before ``before``.

    The storage function's sweep (server credentials). Oldest lease first;
    needs the collection-group index ``Files (status ASC, lease_until ASC)``.
    """
    query = (
        db.collection_group(layout.FILES)
        .where(filter=FieldFilter("status", "==", "processing"))
        .where(filter=FieldFilter("lease_until", "<", before))
        .order_by("lease_until")
    )
    return query.limit(limit) if limit else query
