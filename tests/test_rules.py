"""firestore.rules against the real Firestore emulator, as Firebase users see them.

The Python server SDK bypasses rules, so every case here goes over the
emulator's REST API with an unsigned Firebase ID token (the emulator accepts
them), exactly as a web client or the console would. The data is seeded with
the server SDK (``db``), which the rules do not apply to.

The matrix covers owner / writer / viewer / outsider / anonymous x
read / create / update / delete x project / experiment / run / metric /
dataset / file, plus the validation rules (status transitions, immutable
``created_at``, member roles). Every allowed case must succeed and every
other case must be denied. The mutation tests load altered copies of the
rules (one clause dropped or weakened) and show that some case then flips.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from google.cloud import firestore

from aletheia.cloud import config, layout

RULES_FILE = Path(__file__).resolve().parents[1] / "firestore.rules"

#: Placeholder for the per-case project id in every path below.
PROJECT = "{p}"
OTHER_PROJECT = "rival"
EXPERIMENT = "exp"
SHA = "a" * 64
NEW_SHA = "b" * 64
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
T1 = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)

# Principals: uid, or None for a request without a token.
OWNER, WRITER, VIEWER, OUTSIDER, ANONYMOUS = "u-owner", "u-writer", "u-viewer", "u-outsider", None
PRINCIPALS = {
    "owner": OWNER,
    "writer": WRITER,
    "viewer": VIEWER,
    "outsider": OUTSIDER,
    "anonymous": ANONYMOUS,
}
ROLE_LEVEL = {"owner": 3, "writer": 2, "viewer": 1, "outsider": 0, "anonymous": 0}


# --------------------------------------------------------------------------- REST client


def id_token(uid: str, cloud_project: str) -> str:
    """An unsigned Firebase ID token for ``uid``; the emulator does not check signatures."""
    now = int(time.time())
    payload = {
        "iss": f"https://securetoken.google.com/{cloud_project}",
        "aud": cloud_project,
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
    }

    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


def encode(value: Any) -> dict[str, Any]:
    """A Python value as a Firestore REST ``Value``."""
    if value is None:
        return {"nullValue": None}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, dt.datetime):
        return {"timestampValue": value.isoformat().replace("+00:00", "Z")}
    if isinstance(value, dict):
        return {"mapValue": {"fields": {k: encode(v) for k, v in value.items()}}}
    if isinstance(value, list):
        return {"arrayValue": {"values": [encode(v) for v in value]}}
    raise TypeError(f"cannot encode {type(value).__name__}")


@dataclass
class Rest:
    """Document operations over the emulator's REST API, as one user."""

    settings: config.Settings
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def base(self) -> str:
        return (
            f"http://{self.settings.firestore_emulator_host}/v1/projects/"
            f"{self.settings.cloud_project}/databases/(default)/documents"
        )

    def _headers(self, uid: str | None) -> dict[str, str]:
        if uid is None:
            return {}
        return {"Authorization": f"Bearer {id_token(uid, self.settings.cloud_project)}"}

    def call(
        self, uid: str | None, op: str, path: str, data: dict[str, Any] | None = None
    ) -> requests.Response:
        """Run ``op`` (get, list, create, update, delete) on ``path`` as ``uid``."""
        url = f"{self.base}/{path}"
        headers = self._headers(uid)
        body = {"fields": {k: encode(v) for k, v in (data or {}).items()}}
        if op == "get":
            return self.session.get(url, headers=headers, timeout=10)
        if op == "list":
            return self.session.get(url, headers=headers, params={"pageSize": 5}, timeout=10)
        if op == "create":
            parent, _, doc_id = path.rpartition("/")
            return self.session.post(
                f"{self.base}/{parent}",
                params={"documentId": doc_id},
                json=body,
                headers=headers,
                timeout=10,
            )
        if op == "update":
            params = [("updateMask.fieldPaths", k) for k in data or {}]
            params.append(("currentDocument.exists", "true"))
            return self.session.patch(url, params=params, json=body, headers=headers, timeout=10)
        if op == "delete":
            return self.session.delete(url, headers=headers, timeout=10)
        raise ValueError(op)


def load_rules(settings: config.Settings, text: str) -> None:
    """Swap the emulator's rules without a restart; fail on a compile error."""
    url = (
        f"http://{settings.firestore_emulator_host}/emulator/v1/projects/"
        f"{settings.cloud_project}:securityRules"
    )
    body = {"rules": {"files": [{"name": "firestore.rules", "content": text}]}}
    response = requests.put(url, json=body, timeout=30)
    assert response.status_code == 200, f"rules were refused: {response.text[:2000]}"


# --------------------------------------------------------------------------- seed data
# Every case runs in a project of its own (``{p}`` in the paths below becomes
# ``<run>-<case number>``), seeded the same way, so cases cannot disturb one
# another and run concurrently.

P = layout.project(PROJECT)
EXP = layout.experiment(PROJECT, EXPERIMENT)
RUN = layout.run(PROJECT, EXPERIMENT, "1")
METRIC = layout.metric_chunk(PROJECT, EXPERIMENT, "1", "loss", 0)
DATASET = layout.dataset(PROJECT, "mnist")
VERSION = layout.dataset_version(PROJECT, "mnist", "v1")
VALIDATED = layout.dataset_version(PROJECT, "mnist", "v2")
PROFILED = layout.dataset_version(PROJECT, "mnist", "v3")
FILE = layout.file(PROJECT, SHA)
ARTIFACT_VERSION = layout.artifact_version(PROJECT, EXPERIMENT, "model", "v1")
BLOB = layout.blob_record(PROJECT, SHA)
BLOB_REF = layout.blob_ref(PROJECT, SHA, "run:1")
ARTIFACT = layout.artifact(PROJECT, EXPERIMENT, "model")
ENDED_METRIC = layout.metric_chunk(PROJECT, EXPERIMENT, "finished", "loss", 0)
RESULT = layout.result(PROJECT, EXPERIMENT, "1")
ENDED_RESULT = layout.result(PROJECT, EXPERIMENT, "finished")
#: A run kept under a conflict id beside run "1" (aletheia/tracking/ownership.py).
CONFLICT_RUN = layout.run(PROJECT, EXPERIMENT, "1-conflict-t2")
RUNS = layout.runs(PROJECT, EXPERIMENT)
#: Seeded run id per status: run "1" is running, the others are named after theirs.
RUN_IDS = {"running": "1", "finished": "finished", "failed": "failed", "crashed": "crashed"}


def run_doc(status: str = "running", **extra: Any) -> dict[str, Any]:
    """A run document shaped like the ones ``Metastore`` writes."""
    doc = {
        "status": status,
        "started_at": T0,
        "heartbeat_at": T0,
        "ended_at": None,
        "params": {"lr": 0.1},
        "hyper_params": {},
        "summary": {"loss": {"last": 0.5}},
        "datasets": [],
        "dataset_refs": ["mnist@v1"],
    }
    return doc | extra


MEMBERS = {OWNER: "owner", WRITER: "writer", VIEWER: "viewer"}
SEED: dict[str, dict[str, Any]] = {
    P: {"name": "acme", "created_at": T0, "members": MEMBERS},
    EXP: {"name": EXPERIMENT, "desc": "", "created_at": T0, "next_run_id": 2},
    RUN: run_doc(owner_token="t-1", run="1"),
    CONFLICT_RUN: run_doc(owner_token="t-2", run="1-conflict-t2", conflict_of="1"),
    **{layout.run(PROJECT, EXPERIMENT, s): run_doc(s) for s in ("finished", "failed", "crashed")},
    METRIC: {"steps": [0, 1], "values": [0.9, 0.8], "times": [T0, T1]},
    DATASET: {"created_at": T0, "desc": "digits", "latest_version": "v2", "version_count": 2},
    ARTIFACT: {"latest_version": "v1", "version_count": 1},
    ENDED_METRIC: {"steps": [0, 1], "values": [0.9, 0.8], "times": [T0, T1]},
    RESULT: {"run": "1", "experiment": EXPERIMENT, "status": "running"},
    ENDED_RESULT: {"run": "finished", "experiment": EXPERIMENT, "status": "finished"},
    VERSION: {"created_at": T0, "files": 3},
    VALIDATED: {"created_at": T0, "files": 3, "validation": {"ok": True}},
    PROFILED: {"created_at": T0, "files": 3, "profile": {"tables": []}},
    FILE: {"size": 10, "status": "done", "schema": {"a": "int"}},
    ARTIFACT_VERSION: {"created_at": T0, "run": "1", "seq": 1},
    BLOB: {"sha256": SHA, "datasets": {"mnist": True}, "holders": {"artifact": True}},
    BLOB_REF: {"kind": "run", "holder": "run:1"},
}
# The outsider owns a project of their own: ownership there grants nothing here.
RIVAL = layout.project(OTHER_PROJECT)
RIVAL_DOC = {"name": OTHER_PROJECT, "created_at": T0, "members": {OUTSIDER: "owner"}}


def seed(db: firestore.Client, projects: list[str]) -> None:
    """Write the seed documents for every project (server credentials: no rules apply)."""
    batch, pending = db.batch(), 0
    writes = [(RIVAL, RIVAL_DOC)]
    writes += [(path.replace(PROJECT, p), data) for p in projects for path, data in SEED.items()]
    for path, data in writes:
        batch.set(db.document(path), data)
        pending += 1
        if pending == 500:
            batch.commit()
            batch, pending = db.batch(), 0
    batch.commit()


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One request and whether the rules must allow it."""

    name: str
    uid: str | None
    op: str
    path: str
    allowed: bool
    data: dict[str, Any] | None = None

    def __str__(self) -> str:
        return self.name


# Each target: the seeded document, and a valid create and update for it.
TARGETS: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "project": (
        P,
        f"{P}-new",
        {"created_at": T0, "members": {"<uid>": "owner"}},
        {"description": "robots"},
    ),
    "experiment": (EXP, f"{EXP}-new", {"created_at": T0}, {"desc": "baseline"}),
    "run": (RUN, f"{RUN}-new", run_doc(), {"heartbeat_at": T1}),
    "metric": (
        METRIC,
        layout.metric_chunk(PROJECT, EXPERIMENT, "1", "acc", 0),
        {"steps": [0], "values": [0.1]},
        {"steps": [0, 1, 2], "values": [0.9, 0.8, 0.7]},
    ),
    "dataset": (DATASET, f"{DATASET}-new", {"created_at": T0}, {"desc": "handwritten digits"}),
    "file": (FILE, layout.file(PROJECT, NEW_SHA), {"size": 1}, {"status": "error"}),
}


def expected(target: str, op: str, who: str) -> bool:
    """The access model, written out: the emulator must agree with it on every case."""
    level = ROLE_LEVEL[who]
    if op == "read":
        return level >= 1
    if target == "file":
        return False  # written by the storage function (server credentials) only
    if op == "delete":
        return level == 3
    if target == "project" and op == "create":
        return who != "anonymous"  # anyone signed in may start a project of their own
    if target == "project":
        return level == 3
    return level >= 2


def _own(data: dict[str, Any], uid: str | None) -> dict[str, Any]:
    """A new project names its creator as owner."""
    if "members" not in data:
        return data
    return data | {"members": {uid or "nobody": "owner"}}


def matrix_cases() -> list[Case]:
    """owner/writer/viewer/outsider/anonymous x read/create/update/delete x 6 targets."""
    cases = []
    for target, (path, new_path, new_data, update) in TARGETS.items():
        for who, uid in PRINCIPALS.items():
            requests_ = {
                "read": ("get", path, None),
                "create": ("create", new_path, _own(new_data, uid)),
                "update": ("update", path, update),
                "delete": ("delete", path, None),
            }
            for op, (verb, where, data) in requests_.items():
                name = f"{who} {op} {target}"
                cases.append(Case(name, uid, verb, where, expected(target, op, who), data))
    return cases


def transition_cases() -> list[Case]:
    """Run status moves only forward (see firestore.rules)."""
    moves = [
        ("running", "finished", True),
        ("running", "failed", True),
        ("running", "crashed", True),
        ("running", "interrupted", True),
        ("crashed", "finished", True),
        ("crashed", "failed", True),
        ("crashed", "running", False),
        ("finished", "running", False),
        ("finished", "failed", False),
        ("failed", "finished", False),
        ("running", "paused", False),
    ]
    return [
        Case(
            f"run {a} -> {b}",
            WRITER,
            "update",
            layout.run(PROJECT, EXPERIMENT, RUN_IDS[a]),
            ok,
            {"status": b},
        )
        for a, b, ok in moves
    ]


def validation_cases() -> list[Case]:
    """Cheap document checks: each denied case is a writer's (or owner's) mistake."""
    metrics = layout.metrics(PROJECT, EXPERIMENT, "1")
    grow = MEMBERS | {"u-new": "viewer"}
    return [
        Case("run started_at changed", WRITER, "update", RUN, False, {"started_at": T1}),
        Case("run params not a map", WRITER, "update", RUN, False, {"params": "lr=0.1"}),
        Case("run ended", WRITER, "update", RUN, True, {"status": "finished", "ended_at": T1}),
        Case("run ended_at not a time", WRITER, "update", RUN, False, {"ended_at": "now"}),
        Case("run without status", WRITER, "create", f"{RUNS}/x", False, {"started_at": T0}),
        Case("run without started_at", WRITER, "create", f"{RUNS}/x", False, {"status": "running"}),
        Case("run synced finished", WRITER, "create", f"{RUNS}/x", True, run_doc("finished")),
        Case("experiment created_at changed", WRITER, "update", EXP, False, {"created_at": T1}),
        Case("experiment next_run_id a str", WRITER, "update", EXP, False, {"next_run_id": "3"}),
        Case("dataset created_at changed", WRITER, "update", DATASET, False, {"created_at": T1}),
        Case(
            "metric chunk without values", WRITER, "create", f"{metrics}/x~0", False, {"steps": [1]}
        ),
        Case("dataset version edited", WRITER, "update", VERSION, False, {"files": 4}),
        Case("dataset version created", WRITER, "create", f"{VERSION}-2", True, {"files": 4}),
        Case("version validation added", WRITER, "update", VERSION, True, {"validation": {}}),
        Case(
            "viewer adds version validation", VIEWER, "update", VERSION, False, {"validation": {}}
        ),
        Case("version validation replaced", WRITER, "update", VALIDATED, False, {"validation": {}}),
        Case("version profile added", WRITER, "update", VERSION, True, {"profile": {}}),
        Case("profile added after validation", WRITER, "update", VALIDATED, True, {"profile": {}}),
        Case(
            "validation added after profile", WRITER, "update", PROFILED, True, {"validation": {}}
        ),
        Case("viewer adds version profile", VIEWER, "update", VERSION, False, {"profile": {}}),
        Case("version profile replaced", WRITER, "update", PROFILED, False, {"profile": {}}),
        Case(
            "version edited with its profile",
            WRITER,
            "update",
            VERSION,
            False,
            {"profile": {}, "files": 4},
        ),
        Case(
            "version edited with its validation",
            WRITER,
            "update",
            VERSION,
            False,
            {"validation": {}, "files": 4},
        ),
        Case("writer adds a member", WRITER, "update", P, False, {"members": grow}),
        Case(
            "writer promotes self",
            WRITER,
            "update",
            P,
            False,
            {"members": MEMBERS | {WRITER: "owner"}},
        ),
        Case("owner adds a member", OWNER, "update", P, True, {"members": grow}),
        Case(
            "owner grants unknown role",
            OWNER,
            "update",
            P,
            False,
            {"members": grow | {"u-new": "admin"}},
        ),
        Case(
            "owner drops the last owner", OWNER, "update", P, False, {"members": {WRITER: "writer"}}
        ),
        Case("owner changes created_at", OWNER, "update", P, False, {"created_at": T1}),
        Case(
            "project created for others",
            OUTSIDER,
            "create",
            f"{P}-squat",
            False,
            {"created_at": T0, "members": {OUTSIDER: "owner", OWNER: "viewer"}},
        ),
        Case(
            "project without created_at",
            OUTSIDER,
            "create",
            f"{P}-x",
            False,
            {"members": {OUTSIDER: "owner"}},
        ),
        Case(
            "user creates a server-managed project",
            OUTSIDER,
            "create",
            f"{P}-sm",
            False,
            {"created_at": T0, "members": {OUTSIDER: "owner"}, "server_managed": True},
        ),
        Case(
            "owner marks project server-managed",
            OWNER,
            "update",
            P,
            False,
            {"server_managed": True},
        ),
        Case(
            "outsider creates an existing project",
            OUTSIDER,
            "update",
            P,
            False,
            {"created_at": T0, "members": {OUTSIDER: "owner"}},
        ),
        Case("outsider lists runs", OUTSIDER, "list", RUNS, False),
        Case("viewer lists runs", VIEWER, "list", RUNS, True),
        Case("outsider reads own project", OUTSIDER, "get", RIVAL, True),
        Case("outsider updates a run here", OUTSIDER, "update", RUN, False, {"heartbeat_at": T1}),
        Case(
            "viewer lists artifact files",
            VIEWER,
            "list",
            layout.artifact_files(PROJECT, EXPERIMENT, "m"),
            True,
        ),
        Case(
            "writer writes an artifact file",
            WRITER,
            "create",
            layout.artifact_file(PROJECT, EXPERIMENT, "m", "w.bin"),
            True,
            {"sha256": SHA},
        ),
        Case(
            "viewer writes a result",
            VIEWER,
            "create",
            layout.result(PROJECT, EXPERIMENT, "2"),
            False,
            {"a": 1},
        ),
        Case(
            "writer writes a result",
            WRITER,
            "create",
            layout.result(PROJECT, EXPERIMENT, "2"),
            True,
            {"a": 1},
        ),
        Case(
            "writer writes metadata",
            WRITER,
            "create",
            layout.metadata_doc(PROJECT, "t"),
            True,
            {"k": "v"},
        ),
        Case("artifact version edited", WRITER, "update", ARTIFACT_VERSION, False, {"run": "2"}),
        Case(
            "artifact version created",
            WRITER,
            "create",
            layout.artifact_version(PROJECT, EXPERIMENT, "model", "v2"),
            True,
            {"run": "2", "seq": 2},
        ),
        Case(
            "viewer creates an artifact version",
            VIEWER,
            "create",
            layout.artifact_version(PROJECT, EXPERIMENT, "model", "v2"),
            False,
            {"run": "2"},
        ),
        Case("viewer reads an artifact version", VIEWER, "get", ARTIFACT_VERSION, True),
        Case("writer deletes an artifact version", WRITER, "delete", ARTIFACT_VERSION, False),
        Case("owner deletes an artifact version", OWNER, "delete", ARTIFACT_VERSION, True),
        Case("run artifacts not a list", WRITER, "update", RUN, False, {"artifacts": "model"}),
        Case("viewer reads blob holders", VIEWER, "get", BLOB, True),
        Case("outsider reads blob holders", OUTSIDER, "get", BLOB, False),
        Case("writer records a holder", WRITER, "update", BLOB, True, {"holders": {"run": True}}),
        Case("viewer records a holder", VIEWER, "update", BLOB, False, {"holders": {"run": True}}),
        Case(
            "writer records a reference",
            WRITER,
            "create",
            layout.blob_ref(PROJECT, SHA, "run:2"),
            True,
            {"kind": "run"},
        ),
        Case("writer deletes blob holders", WRITER, "delete", BLOB, False),
        Case("owner deletes blob holders", OWNER, "delete", BLOB, True),
        Case("writer deletes a reference", WRITER, "delete", BLOB_REF, False),
        Case("unknown collection", OWNER, "create", f"{P}/Secrets/x", False, {"k": "v"}),
        Case("root collection", OWNER, "create", "Other/x", False, {"k": "v"}),
    ]


def forgery_cases() -> list[Case]:
    """A document names the project (and experiment) its path is in, nothing else.

    Collection-group queries (lineage, ``datasets rm``) select on these fields:
    a document in the outsider's own project claiming this one would show up
    in this project's answers.
    """
    mine = {"project": PROJECT}
    rival_runs = layout.runs(OTHER_PROJECT, EXPERIMENT)
    rival_file = layout.dataset_file(OTHER_PROJECT, "mnist", "x.csv")
    entry = {"kind": "dataset", "sha256": SHA, "dataset": "mnist", "version": "v1"}
    return [
        Case("run names its project", WRITER, "create", f"{RUNS}/x", True, run_doc(**mine)),
        Case(
            "run claims another project",
            WRITER,
            "create",
            f"{RUNS}/x",
            False,
            run_doc(project=OTHER_PROJECT),
        ),
        Case(
            "run claims another experiment",
            WRITER,
            "create",
            f"{RUNS}/x",
            False,
            run_doc(project=PROJECT, experiment="other"),
        ),
        Case("run moved to another project", WRITER, "update", RUN, False, {"project": "x"}),
        Case(
            "rival run claims this project",
            OUTSIDER,
            "create",
            f"{rival_runs}/x",
            False,
            run_doc(project=PROJECT),
        ),
        Case(
            "rival file claims this project",
            OUTSIDER,
            "create",
            rival_file,
            False,
            entry | {"project": PROJECT},
        ),
        Case(
            "dataset file names its project",
            WRITER,
            "create",
            layout.dataset_file(PROJECT, "mnist", "x.csv"),
            True,
            entry | mine,
        ),
        Case(
            "blob ref claims another project",
            WRITER,
            "create",
            layout.blob_ref(PROJECT, SHA, "run:9"),
            False,
            {"kind": "run", "project": OTHER_PROJECT},
        ),
        Case(
            "artifact file claims another project",
            WRITER,
            "create",
            layout.artifact_file(PROJECT, EXPERIMENT, "m", "w.bin"),
            False,
            {"sha256": SHA, "project": OTHER_PROJECT},
        ),
        Case(
            "artifact version claims another experiment",
            WRITER,
            "create",
            layout.artifact_version(PROJECT, EXPERIMENT, "model", "v2"),
            False,
            {"run": "2", "seq": 2, "project": PROJECT, "experiment": "other"},
        ),
    ]


def integrity_cases() -> list[Case]:
    """Ended runs and their results are records; counters only go up."""
    finished = layout.run(PROJECT, EXPERIMENT, "finished")
    failed = layout.run(PROJECT, EXPERIMENT, "failed")
    ended_metrics = layout.metrics(PROJECT, EXPERIMENT, "finished")
    best = {"loss": {"last": 0.01}}
    return [
        Case(
            "finished run summary rewritten", WRITER, "update", finished, False, {"summary": best}
        ),
        Case("failed run params rewritten", WRITER, "update", failed, False, {"params": {"lr": 1}}),
        Case("owner rewrites a finished run", OWNER, "update", finished, False, {"summary": best}),
        Case(
            "crashed run settled by sync",
            WRITER,
            "update",
            layout.run(PROJECT, EXPERIMENT, "crashed"),
            True,
            {"status": "finished", "summary": best},
        ),
        Case(
            "finished run deleted in MLflow",
            WRITER,
            "update",
            finished,
            True,
            {"lifecycle_stage": "deleted"},
        ),
        Case(
            "finished run metrics rewritten",
            WRITER,
            "update",
            ENDED_METRIC,
            False,
            {"steps": [0, 1], "values": [0.1, 0.0]},
        ),
        Case(
            "finished run gets a chunk",
            WRITER,
            "create",
            f"{ended_metrics}/acc~0",
            False,
            {"steps": [0], "values": [1.0]},
        ),
        Case(
            "running run gets a chunk",
            WRITER,
            "create",
            layout.metric_chunk(PROJECT, EXPERIMENT, "1", "acc", 1),
            True,
            {"steps": [0], "values": [1.0]},
        ),
        Case(
            "finished run result rewritten",
            WRITER,
            "update",
            ENDED_RESULT,
            False,
            {"metrics": {"loss": 0.01}},
        ),
        Case("running run result written", WRITER, "update", RESULT, True, {"metrics": {"a": 1}}),
        Case(
            "ended run result created",
            WRITER,
            "create",
            layout.result(PROJECT, EXPERIMENT, "failed"),
            True,
            {"run": "failed", "experiment": EXPERIMENT},
        ),
        Case(
            "result claims another experiment",
            WRITER,
            "update",
            RESULT,
            False,
            {"experiment": "other"},
        ),
        Case("next_run_id lowered", WRITER, "update", EXP, False, {"next_run_id": 1}),
        Case("next_run_id raised", WRITER, "update", EXP, True, {"next_run_id": 3}),
        Case(
            "dataset version_count lowered", WRITER, "update", DATASET, False, {"version_count": 1}
        ),
        Case(
            "dataset version added",
            WRITER,
            "update",
            DATASET,
            True,
            {"version_count": 3, "latest_version": "v3"},
        ),
        Case(
            "writer rewinds latest_version",
            WRITER,
            "update",
            DATASET,
            False,
            {"latest_version": "v1"},
        ),
        Case(
            "latest_version beside a new count",
            WRITER,
            "update",
            DATASET,
            False,
            {"version_count": 3, "latest_version": "v1"},
        ),
        Case(
            "owner rewinds latest_version (rm)",
            OWNER,
            "update",
            DATASET,
            True,
            {"latest_version": "v1"},
        ),
        Case(
            "artifact version_count lowered",
            WRITER,
            "update",
            ARTIFACT,
            False,
            {"version_count": 0},
        ),
        Case(
            "artifact rewinds latest_version",
            WRITER,
            "update",
            ARTIFACT,
            False,
            {"latest_version": "v0"},
        ),
    ]


def ownership_cases() -> list[Case]:
    """Which process owns a run (owner token, conflict copy, its id) is never rewritten."""
    crashed = layout.run(PROJECT, EXPERIMENT, "crashed")  # seeded without an owner token
    beat = {"heartbeat_at": T1}
    return [
        Case("run owner_token changed", WRITER, "update", RUN, False, {"owner_token": "t-eve"}),
        Case("run owner_token cleared", WRITER, "update", RUN, False, {"owner_token": None}),
        Case("owner changes owner_token", OWNER, "update", RUN, False, {"owner_token": "t-own"}),
        Case("run owner_token kept", WRITER, "update", RUN, True, {"owner_token": "t-1"} | beat),
        Case(
            "legacy run gets an owner_token",
            WRITER,
            "update",
            crashed,
            True,
            {"owner_token": "t-9"},
        ),
        Case(
            "conflict run forgets conflict_of",
            WRITER,
            "update",
            CONFLICT_RUN,
            False,
            {"conflict_of": None},
        ),
        Case(
            "conflict run points elsewhere",
            WRITER,
            "update",
            CONFLICT_RUN,
            False,
            {"conflict_of": "finished"},
        ),
        Case(
            "conflict run keeps conflict_of",
            WRITER,
            "update",
            CONFLICT_RUN,
            True,
            {"conflict_of": "1"} | beat,
        ),
        Case("run names another run id", WRITER, "update", RUN, False, {"run": "finished"}),
        Case("run names its own id", WRITER, "update", RUN, True, {"run": "1"} | beat),
        Case(
            "run created under another id",
            WRITER,
            "create",
            layout.run(PROJECT, EXPERIMENT, "7"),
            False,
            run_doc(run="1"),
        ),
        Case(
            "run created naming its id",
            WRITER,
            "create",
            layout.run(PROJECT, EXPERIMENT, "7"),
            True,
            run_doc(run="7", owner_token="t-7"),
        ),
    ]


ALL_CASES = (
    matrix_cases()
    + transition_cases()
    + validation_cases()
    + forgery_cases()
    + integrity_cases()
    + ownership_cases()
)
_RUN_IDS = itertools.count()


def outcome(rest: Rest, case: Case, project: str) -> bool:
    """True if the emulator allowed the request, False if the rules denied it."""
    data = {
        k: v.replace(PROJECT, project) if isinstance(v, str) else v
        for k, v in (case.data or {}).items()
    }
    response = rest.call(case.uid, case.op, case.path.replace(PROJECT, project), data)
    if response.status_code == 200:
        return True
    assert response.status_code == 403, f"{case}: unexpected {response.status_code} {response.text}"
    return False


def run_cases(rest: Rest, db: firestore.Client, cases: list[Case]) -> dict[str, bool]:
    """Run every case in a freshly seeded project of its own; ``{case name: allowed}``."""
    run = next(_RUN_IDS)
    projects = [f"r{run}-{i}" for i in range(len(cases))]
    seed(db, projects)
    with ThreadPoolExecutor(max_workers=8) as pool:
        allowed = pool.map(lambda pair: outcome(rest, *pair), zip(cases, projects, strict=True))
        return {case.name: ok for case, ok in zip(cases, allowed, strict=True)}


def mismatches(results: dict[str, bool], cases: list[Case]) -> list[str]:
    """The cases whose outcome differs from the access model."""
    return [
        f"{c} (expected {'allow' if c.allowed else 'deny'})"
        for c in cases
        if results[c.name] != c.allowed
    ]


# --------------------------------------------------------------------------- tests


@pytest.fixture()
def rest(stack: config.Settings) -> Iterator[Rest]:
    """The repository's rules loaded into a wiped emulator, restored afterwards."""
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))
    yield Rest(stack)
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))


def test_the_matrix_is_complete() -> None:
    matrix = matrix_cases()
    assert len(matrix) == 5 * 4 * 6
    assert len({c.name for c in ALL_CASES}) == len(ALL_CASES), "case names must be unique"
    # Both outcomes occur for every operation: no column is all-allow or all-deny.
    for op in ("get", "create", "update", "delete"):
        assert {c.allowed for c in matrix if c.op == op} == {True, False}, op


def test_rules_matrix(rest: Rest, db: firestore.Client) -> None:
    wrong = mismatches(run_cases(rest, db, ALL_CASES), ALL_CASES)
    assert not wrong, "\n".join(wrong)


def test_a_denied_write_changes_nothing(rest: Rest, db: firestore.Client) -> None:
    seed(db, ["solo"])
    run = db.document(RUN.replace(PROJECT, "solo"))
    viewer = Case("viewer finishes run", VIEWER, "update", RUN, False, {"status": "finished"})
    assert not outcome(rest, viewer, "solo")
    assert run.get().get("status") == "running"
    writer = Case("writer finishes run", WRITER, "update", RUN, True, {"status": "finished"})
    assert outcome(rest, writer, "solo")
    assert run.get().get("status") == "finished"


# Each mutation drops or weakens one clause of firestore.rules and names the
# cases that must then flip. The matrix test shows every case passes with the
# real rules; these show each clause is what makes its cases pass, i.e. no
# clause is untested. (Run against the named cases only: the whole matrix per
# mutation would cost seconds each for no more evidence.)
MUTATIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "forward-only run status": (
        "\n            && forward(resource.data.status, incoming().status);",
        ";",
        # (an ended run's moves are refused by amendable() as well)
        ("run crashed -> running",),
    ),
    "immutable run started_at": (
        "&& unchanged('started_at') ",
        "",
        ("run started_at changed",),
    ),
    "run status values": (
        "\n        && d.get('status', null) in ['running', 'finished', 'failed', 'crashed', "
        "'interrupted']",
        "",
        ("run without status",),
    ),
    "typed run fields": ("&& optMap(d, 'params') ", "", ("run params not a map",)),
    "at least one owner": (
        "\n        && members.values().hasAny(['owner'])",
        "",
        ("owner drops the last owner",),
    ),
    "known roles only": (
        "\n        && members.values().hasOnly(['viewer', 'writer', 'owner'])",
        "",
        ("owner grants unknown role",),
    ),
    "project created for oneself": (
        "\n        && incoming().members.keys().hasOnly([request.auth.uid])",
        "",
        ("project created for others",),
    ),
    "owner-only deletes": (
        "allow delete: if isOwner(p);\n\n        match /Runs/{r}",
        "allow delete: if canWrite(p);\n\n        match /Runs/{r}",
        ("writer delete experiment",),
    ),
    "owner-only project update": (
        "allow update: if isOwner(p) && validProject",
        "allow update: if canWrite(p) && validProject",
        ("writer update project", "writer adds a member"),
    ),
    "writers only write metrics": (
        "allow create, update: if canWrite(p) && validChunk(incoming())",
        "allow create, update: if canRead(p) && validChunk(incoming())",
        ("viewer create metric", "viewer update metric"),
    ),
    "function-only Files": (
        "match /Files/{sha} {\n        allow read: if canRead(p);",
        "match /Files/{sha} {\n        allow read, write: if canRead(p);",
        ("owner create file", "writer update file", "viewer delete file"),
    ),
    "members read datasets": (
        "match /Datasets/{d} {\n        allow read: if canRead(p);",
        "match /Datasets/{d} {",
        ("viewer read dataset", "owner read dataset"),
    ),
    "versions are immutable": (
        "match /Versions/{v} {\n          allow read: if canRead(p);\n"
        "          allow create: if canWrite(p) && inProject(p);",
        "match /Versions/{v} {\n          allow read: if canRead(p);\n"
        "          allow create, update: if canWrite(p);",
        ("dataset version edited",),
    ),
    "artifact versions are immutable": (
        "allow read: if canRead(p);\n"
        "            allow create: if canWrite(p) && inExperiment(p, e);",
        "allow read: if canRead(p);\n            allow create, update: if canWrite(p);",
        ("artifact version edited",),
    ),
    "writers only record blob holders": (
        "match /Blobs/{sha} {\n        allow read: if canRead(p);\n"
        "        allow create, update: if canWrite(p) && inProject(p);",
        "match /Blobs/{sha} {\n        allow read: if canRead(p);\n"
        "        allow create, update: if canRead(p);",
        ("viewer records a holder",),
    ),
    "typed run artifacts": (" && optList(d, 'artifacts')", "", ("run artifacts not a list",)),
    "members only": (
        "{'viewer': 1, 'writer': 2, 'owner': 3}.get(roleIn(p), 0)",
        "{'viewer': 1, 'writer': 2, 'owner': 3}.get(roleIn(p), 1)",
        ("outsider read run", "outsider lists runs", "anonymous read file"),
    ),
    "documents name their own project": (
        "function inProject(p) { return incoming().get('project', p) == p; }",
        "function inProject(p) { return true; }",
        (
            "run claims another project",
            "rival run claims this project",
            "rival file claims this project",
            "blob ref claims another project",
            "artifact file claims another project",
        ),
    ),
    "runs name their own experiment": (
        "&& incoming().get('experiment', e) == e;",
        ";",
        (
            "run claims another experiment",
            "result claims another experiment",
            "artifact version claims another experiment",
        ),
    ),
    "ended runs are records": (
        "\n            && amendable(resource.data)",
        "",
        (
            "finished run summary rewritten",
            "failed run params rewritten",
        ),
    ),
    "MLflow deletes ended runs": (
        "\n        || incoming().diff(before).affectedKeys().hasOnly(['lifecycle_stage'])",
        "",
        ("finished run deleted in MLflow",),
    ),
    "ended runs' metrics are records": (
        "&& inExperiment(p, e)\n              && runOpen(p, e, r);",
        "&& inExperiment(p, e);",
        ("finished run metrics rewritten", "finished run gets a chunk"),
    ),
    "ended runs' results are records": (
        "&& inExperiment(p, e) && runOpen(p, e, r);",
        "&& inExperiment(p, e);",
        ("finished run result rewritten",),
    ),
    "counters only go up": (
        "\n        && incoming().get(field, 0) >= resource.data.get(field, 0);",
        ";",
        ("next_run_id lowered", "dataset version_count lowered", "artifact version_count lowered"),
    ),
    "latest_version moves with a new version": (
        "grows('version_count') && (latestMoves() || isOwner(p))",
        "grows('version_count')",
        ("writer rewinds latest_version", "artifact rewinds latest_version"),
    ),
    "latest_version is the new version": (
        "\n            && incoming().get('latest_version', null)"
        " == 'v' + string(incoming().version_count)",
        "",
        ("latest_version beside a new count",),
    ),
    "only server credentials manage projects": (
        "\n        && !('server_managed' in incoming());",
        ";",
        ("user creates a server-managed project",),
    ),
    "owner_token stays once set": (
        "\n            && keptOnceSet('owner_token')",
        "",
        ("run owner_token changed", "run owner_token cleared", "owner changes owner_token"),
    ),
    "conflict_of stays once set": (
        "\n            && keptOnceSet('conflict_of')",
        "",
        ("conflict run forgets conflict_of", "conflict run points elsewhere"),
    ),
    "runs name their own id": (
        "function namesRun(r) { return incoming().get('run', r) == r; }",
        "function namesRun(r) { return true; }",
        ("run names another run id", "run created under another id"),
    ),
    "server_managed stays": (
        "\n        && unchanged('server_managed');",
        ";",
        ("owner marks project server-managed",),
    ),
}
CASES_BY_NAME = {case.name: case for case in ALL_CASES}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_dropping_a_clause_flips_a_case(rest: Rest, db: firestore.Client, name: str) -> None:
    old, new, must_flip = MUTATIONS[name]
    rules = RULES_FILE.read_text(encoding="utf-8")
    assert rules.count(old) == 1, f"mutation {name!r} no longer matches firestore.rules: update it"
    cases = [CASES_BY_NAME[case] for case in must_flip]
    load_rules(rest.settings, rules.replace(old, new))
    flipped = mismatches(run_cases(rest, db, cases), cases)
    assert len(flipped) == len(cases), f"without {name!r} only these flip: {flipped}"
