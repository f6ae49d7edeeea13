"""What a model version records, and how it gets its number.

The record is built once, before any write, from the artifact version and
the run's facts; it is checked against Firestore's limits by the caller.
Numbers are taken by an optimistic ``create`` of ``Versions/{n}`` batched
with the model document's counter (:func:`commit_version`).
"""

from __future__ import annotations

import getpass
import secrets
from collections.abc import Mapping
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from aletheia.cloud import clients, layout, limits
from aletheia.data.artifacts import ArtifactVersion
from aletheia.errors import ConflictError, ValidationError
from aletheia.models import rename
from aletheia.models.entities import ArtifactRef, RunFacts

#: Attempts at numbering a version when concurrent registrations race for the same number.
MAX_COMMIT_ATTEMPTS = 50


def tag_key(key: object) -> str:
    """A tag key: any text of 1 to 250 characters."""
    text = limits.validate_text(key, "tag key")
    if not text or len(text) > 250:
        raise ValidationError(f"invalid tag key {key!r}", "use 1 to 250 characters")
    return text


def version_record(
    project: str,
    name: str,
    artifact: ArtifactVersion | None,
    run: RunFacts | None,
    source: str | None,
    flavor: str | None,
    description: str | None,
    tags: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The document of a new version (without its number and ``registered_by``)."""
    art = None
    if artifact is not None:
        art = ArtifactRef(
            artifact.experiment,
            artifact.name,
            artifact.version,
            artifact.manifest_sha256,
            len(artifact.files),
            sum(f.size for f in artifact.files),
        ).__dict__
        source = source or (
            f"aletheia-art://{project}/{artifact.experiment}/artifacts/"
            f"{artifact.name}/{artifact.version}"
        )
    datasets = [{"name": n, "version": v} for n, v in (run.datasets if run else ())]
    git = {k: (run.git if run else {}).get(k) for k in ("commit", "branch", "dirty", "remote")}
    return {
        "project": project,
        "model": name,
        "flavor": limits.validate_text(flavor, "flavor") if flavor else None,
        "source": limits.validate_text(source, "model source") if source else None,
        "experiment": run.experiment if run else (artifact.experiment if artifact else None),
        "run": run.run if run else (artifact.run if artifact else None),
        "artifact": art,
        "datasets": datasets,
        "dataset_refs": [layout.dataset_ref(d["name"], d["version"]) for d in datasets],
        "git": git,
        "params": dict(run.params) if run else {},
        "hyper_params": dict(run.hyper_params) if run else {},
        "metrics": dict(run.metrics) if run else {},
        "created_at": firestore.SERVER_TIMESTAMP,
        "tags": {tag_key(k): limits.validate_text(v, "tag value") for k, v in (tags or {}).items()},
        "description": limits.validate_text(description or "", "version description"),
        "stage": "None",
    }


def acting_user(db: firestore.Client) -> str:
    """The signed-in user's uid (the rules check it), else ``server:<login name>``."""
    uid = clients.acting_uid(db)
    if uid is not None:
        return uid
    try:
        return f"server:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "server"


#: Field of a version (and a model) holding a token drawn by the call that created it.
REGISTRATION = "registration"


def commit_version(db: firestore.Client, project: str, name: str, record: dict[str, Any]) -> int:
    """Create ``Versions/{n}`` and bump the model's counter in one batch; returns n.

    The client library retries a commit whose answer did not come (UNAVAILABLE), and a
    retry of one that landed fails as "exists": that version is this registration's own
    when it holds the registration's token, and is not registered again as n+1.
    """
    model_doc = db.document(layout.model(project, name))
    record = {**record, REGISTRATION: secrets.token_hex(8)}
    tried = 0
    for _ in range(MAX_COMMIT_ATTEMPTS):
        current = model_doc.get().to_dict() or {}
        rename.ensure_not_renaming(name, current)
        n = max(int(current.get("version_count") or 0), tried) + 1
        batch = db.batch()
        batch.create(
            db.document(layout.model_version(project, name, n)),
            {**record, "version": n},
        )
        batch.update(
            model_doc,
            {"version_count": n, "latest_version": n, "updated_at": firestore.SERVER_TIMESTAMP},
        )
        try:
            batch.commit()
            return n
        except (gexc.AlreadyExists, gexc.Conflict):
            taken = db.document(layout.model_version(project, name, n)).get([REGISTRATION])
            if (taken.to_dict() or {}).get(REGISTRATION) == record[REGISTRATION]:
                return n
            tried = n  # another registration took this number
    raise ConflictError(
        f"could not number a version of model {name!r}: too many concurrent registrations",
        "register it again",
    )
