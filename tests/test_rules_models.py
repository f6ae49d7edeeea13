"""firestore.rules for the model registry, as Firebase users see them.

The same machinery as ``test_rules.py`` (REST calls with unsigned ID tokens,
one freshly seeded project per case): the role matrix over models and model
versions, the checks that keep a version a record, and mutation tests
showing that dropping any of the new clauses flips a case. A signed-in
writer's whole flow (``log_model``, aliases, lineage) runs under the rules too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from test_auth import as_user, rules_stack, uid_of
from test_rules import (
    EXPERIMENT,
    OTHER_PROJECT,
    OUTSIDER,
    OWNER,
    PRINCIPALS,
    PROJECT,
    ROLE_LEVEL,
    RULES_FILE,
    T0,
    T1,
    VIEWER,
    WRITER,
    Case,
    Rest,
    load_rules,
    mismatches,
    outcome,
    seed,
)

from aletheia.cloud import config, layout, members
from aletheia.models import rename
from aletheia.tracking.metastore import Metastore

__all__ = ["rules_stack"]  # the fixture, shared with test_auth

MODEL = layout.model(PROJECT, "clf")
VERSION = layout.model_version(PROJECT, "clf", 1)
NEXT = layout.model_version(PROJECT, "clf", 2)
FRESH = layout.model(PROJECT, "fresh")
SEED_MODELS: dict[str, dict[str, Any]] = {
    MODEL: {
        "name": "clf",
        "project": PROJECT,
        "created_at": T0,
        "aliases": {"champion": 1},
        "tags": {},
        "version_count": 1,
        "latest_version": 1,
    },
    VERSION: {
        "project": PROJECT,
        "model": "clf",
        "version": 1,
        "experiment": EXPERIMENT,
        "run": "1",
        "registered_by": WRITER,
        "created_at": T0,
        "dataset_refs": ["mnist@v1"],
        "params": {"lr": 0.1},
        "metrics": {"acc": 0.9},
        "tags": {},
        "description": "",
    },
}


def new_version(uid: str | None, **extra: Any) -> dict[str, Any]:
    """Version 2 of ``clf`` as ``uid`` would register it."""
    doc = SEED_MODELS[VERSION] | {"version": 2, "registered_by": uid or "nobody"}
    return doc | extra


def expected(op: str, who: str) -> bool:
    level = ROLE_LEVEL[who]
    return {"read": level >= 1, "create": level >= 2, "update": level >= 2}.get(op, level == 3)


def matrix_cases() -> list[Case]:
    """owner/writer/viewer/outsider/anonymous x read/create/update/delete x model, version."""
    cases = []
    for who, uid in PRINCIPALS.items():
        targets = {
            "model": (
                MODEL,
                (FRESH, {"name": "fresh", "project": PROJECT, "created_at": T0}),
                {"aliases": {"champion": 1, "staging": 1}},
            ),
            "model version": (VERSION, (NEXT, new_version(uid)), {"description": "better"}),
        }
        for target, (path, (new_path, new_data), update) in targets.items():
            requests_ = {
                "read": ("get", path, None),
                "create": ("create", new_path, new_data),
                "update": ("update", path, update),
                "delete": ("delete", path, None),
            }
            for op, (verb, where, data) in requests_.items():
                cases.append(
                    Case(f"{who} {op} {target}", uid, verb, where, expected(op, who), data)
                )
    return cases


def record_cases() -> list[Case]:
    """A version records what was registered; only its annotations change."""
    at3 = layout.model_version(PROJECT, "clf", 3)
    return [
        Case(
            "version metrics rewritten", WRITER, "update", VERSION, False, {"metrics": {"acc": 1}}
        ),
        Case("owner moves a version's run", OWNER, "update", VERSION, False, {"run": "2"}),
        Case("version data rewritten", WRITER, "update", VERSION, False, {"dataset_refs": []}),
        Case("version tagged", WRITER, "update", VERSION, True, {"tags": {"k": "v"}}),
        Case("version staged", WRITER, "update", VERSION, True, {"stage": "Production"}),
        Case("version numbered off its id", WRITER, "create", at3, False, new_version(WRITER)),
        Case(
            "version registered in another's name",
            WRITER,
            "create",
            NEXT,
            False,
            new_version(OWNER),
        ),
        Case(
            "version of another model",
            WRITER,
            "create",
            NEXT,
            False,
            new_version(WRITER, model="x"),
        ),
        Case(
            "version claims another project",
            WRITER,
            "create",
            NEXT,
            False,
            new_version(WRITER, project=OTHER_PROJECT),
        ),
        Case(
            "version names a run that does not exist",
            WRITER,
            "create",
            NEXT,
            False,
            new_version(WRITER, run="nope"),
        ),
        Case(
            "version without a run",
            WRITER,
            "create",
            NEXT,
            True,
            new_version(WRITER, run=None, experiment=None),
        ),
        Case("viewer tags a version", VIEWER, "update", VERSION, False, {"tags": {"k": "v"}}),
        Case("model version_count lowered", WRITER, "update", MODEL, False, {"version_count": 0}),
        Case("model created_at changed", WRITER, "update", MODEL, False, {"created_at": T1}),
        Case("model renamed", WRITER, "update", MODEL, False, {"name": "other"}),
        Case(
            "model named after another",
            WRITER,
            "create",
            FRESH,
            False,
            {"name": "x", "project": PROJECT, "created_at": T0},
        ),
        Case(
            "model claims another project",
            WRITER,
            "create",
            FRESH,
            False,
            {"name": "fresh", "project": OTHER_PROJECT, "created_at": T0},
        ),
        Case("writer deletes a model", WRITER, "delete", MODEL, False),
        Case("outsider moves an alias", OUTSIDER, "update", MODEL, False, {"aliases": {}}),
    ]


ALL_CASES = matrix_cases() + record_cases()
CASES_BY_NAME = {case.name: case for case in ALL_CASES}
_RUN_IDS = itertools.count()


def run_cases(rest: Rest, db: firestore.Client, cases: list[Case]) -> dict[str, bool]:
    """Every case in a project of its own, seeded like test_rules' plus a model."""
    run = next(_RUN_IDS)
    projects = [f"m{run}-{i}" for i in range(len(cases))]
    seed(db, projects)
    batch = db.batch()
    for p in projects:
        for path, data in SEED_MODELS.items():
            fields = {k: p if v == PROJECT else v for k, v in data.items()}
            batch.set(db.document(path.replace(PROJECT, p)), fields)
    batch.commit()
    with ThreadPoolExecutor(max_workers=8) as pool:
        allowed = pool.map(lambda pair: outcome(rest, *pair), zip(cases, projects, strict=True))
        return {case.name: ok for case, ok in zip(cases, allowed, strict=True)}


@pytest.fixture()
def rest(stack: config.Settings) -> Iterator[Rest]:
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))
    yield Rest(stack)
    load_rules(stack, RULES_FILE.read_text(encoding="utf-8"))


def test_the_model_matrix_is_complete() -> None:
    assert len(matrix_cases()) == 5 * 4 * 2
    assert len(CASES_BY_NAME) == len(ALL_CASES), "case names must be unique"


def test_model_rules_matrix(rest: Rest, db: firestore.Client) -> None:
    wrong = mismatches(run_cases(rest, db, ALL_CASES), ALL_CASES)
    assert not wrong, "\n".join(wrong)


# Each mutation drops or weakens one clause of the model rules; the named cases must flip.
MUTATIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "versions are records": (
        "incoming().diff(resource.data).affectedKeys()\n"
        "            .hasOnly(['tags', 'description', 'stage', 'updated_at']);",
        "true;",
        ("version metrics rewritten", "owner moves a version's run", "version data rewritten"),
    ),
    "writers register": (
        "allow create: if canWrite(p) && inProject(p) && validModelVersion(p, m, v, incoming());",
        "allow create: if canRead(p) && inProject(p) && validModelVersion(p, m, v, incoming());",
        ("viewer create model version",),
    ),
    "writers annotate versions": (
        "allow update: if canWrite(p) && incoming().diff(resource.data)",
        "allow update: if canRead(p) && incoming().diff(resource.data)",
        ("viewer update model version", "viewer tags a version"),
    ),
    "writers move aliases": (
        "allow update: if canWrite(p) && inProject(p) && validModel(m, incoming())",
        "allow update: if canRead(p) && inProject(p) && validModel(m, incoming())",
        ("viewer update model",),
    ),
    "owners delete models": (
        "allow delete: if isOwner(p);\n\n        match /Versions/{v} {\n"
        "          allow read: if canRead(p);\n"
        "          allow create: if canWrite(p) && inProject(p) && validModelVersion",
        "allow delete: if canWrite(p);\n\n        match /Versions/{v} {\n"
        "          allow read: if canRead(p);\n"
        "          allow create: if canWrite(p) && inProject(p) && validModelVersion",
        ("writer delete model", "writer deletes a model"),
    ),
    "owners delete versions": (
        "'stage', 'updated_at']);\n          allow delete: if isOwner(p);",
        "'stage', 'updated_at']);\n          allow delete: if canWrite(p);",
        ("writer delete model version",),
    ),
    "versions numbered as their id": (
        " && string(d.version) == v",
        "",
        ("version numbered off its id",),
    ),
    "registered by the writer": (
        "\n        && d.get('registered_by', null) == request.auth.uid",
        "",
        ("version registered in another's name",),
    ),
    "versions of their own model": (
        "return d.get('model', null) == m\n        && d.get('version', null) is int",
        "return d.get('version', null) is int",
        ("version of another model",),
    ),
    "versions name a run that exists": (
        "\n        && (unset(d, 'run') || exists(runPath(p, d.experiment, d.run)))",
        "",
        ("version names a run that does not exist",),
    ),
    "model counter only goes up": (
        "&& unchanged('created_at') && grows('version_count');\n"
        "        allow delete: if isOwner(p);\n\n        match /Versions/{v}",
        "&& unchanged('created_at');\n        allow delete: if isOwner(p);\n\n"
        "        match /Versions/{v}",
        ("model version_count lowered",),
    ),
    "models named after their id": (
        "return d.get('name', m) == m && isTimestamp(d, 'created_at')",
        "return isTimestamp(d, 'created_at')",
        ("model renamed", "model named after another"),
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_dropping_a_model_clause_flips_a_case(rest: Rest, db: firestore.Client, name: str) -> None:
    old, new, must_flip = MUTATIONS[name]
    rules = RULES_FILE.read_text(encoding="utf-8")
    assert rules.count(old) == 1, f"mutation {name!r} no longer matches firestore.rules: update it"
    cases = [CASES_BY_NAME[case] for case in must_flip]
    load_rules(rest.settings, rules.replace(old, new))
    flipped = mismatches(run_cases(rest, db, cases), cases)
    assert len(flipped) == len(cases), f"without {name!r} only these flip: {flipped}"


def test_signed_in_writer_registers_and_viewer_follows_lineage(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    ms = Metastore("reg", settings=ana, flush_interval_s=0.2)
    ms.set_downloader(tmp_path / "cache")
    with ms.exper("e", git_policy="off").start_run() as run:
        run.record_dataset("digits", "v1")
        run.add_metric("acc", 0.75)
        mv = run.log_model("clf", {"w": [1, 2]})
    ms.model("clf").set_alias("champion", mv.version)
    assert (mv.version, mv.registered_by) == (1, uid_of(ana))

    bob = as_user(rules_stack, tmp_path, "bob@example.com")
    members.add_member(db, "reg", uid_of(bob), "viewer")
    viewer = Metastore("reg", settings=bob)
    viewer.set_downloader(tmp_path / "bob-cache")
    champion = viewer.model("clf").get(alias="champion")
    assert champion.load() == {"w": [1, 2]} and champion.metrics == {"acc": 0.75}
    assert [(m.name, m.version) for m in viewer.models_trained_on("digits", "v1")] == [("clf", 1)]
    with pytest.raises(gexc.PermissionDenied):
        viewer.model("clf").set_alias("staging", 1)

    carol = as_user(rules_stack, tmp_path, "carol@example.com")
    with pytest.raises(gexc.PermissionDenied):
        Metastore("reg", settings=carol).models_trained_on("digits", "v1")


def test_writers_rename_models_and_cannot_drop_versions_that_way(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path
) -> None:
    """MLflow's rename is an update: a writer renames (in several batches, under the
    rules' per-batch read limit); a viewer cannot; nobody but an owner loses a version."""
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    ms = Metastore("renrules", settings=ana, flush_interval_s=0.2)
    with ms.exper("e", git_policy="off").start_run() as run:
        run.record_dataset("digits", "v1")
        for i in range(rename.USER_BATCH + 3):  # more than one batch
            run.log_model("clf", {"w": i})
        run.log_model("other", {"w": 0})
    ms.model("clf").set_alias("champion", 2)
    bob, carol = (as_user(rules_stack, tmp_path, f"{n}@example.com") for n in ("bob", "carol"))
    members.add_member(db, "renrules", uid_of(bob), "writer")
    members.add_member(db, "renrules", uid_of(carol), "viewer")

    with pytest.raises(gexc.PermissionDenied):
        Metastore("renrules", settings=carol).model_registry.rename_model("clf", "nope")
    writer = Metastore("renrules", settings=bob)
    writer.model_registry.rename_model("clf", "clf2")
    moved = writer.model("clf2").versions()
    assert [v.version for v in moved] == list(range(1, rename.USER_BATCH + 4))
    assert moved[0].registered_by == uid_of(ana) and moved[1].aliases == ("champion",)
    assert not db.document(layout.model("renrules", "clf")).get().exists
    assert writer.models_trained_on("digits", "v1")[0].name == "clf2"

    # A writer marking a model as renamed still cannot delete a version without its copy,
    # nor copy it with a changed record.
    assert not any(_drop_attempts(db, writer.db, "renrules").values())


def _drop_attempts(db: firestore.Client, user_db: firestore.Client, p: str) -> dict[str, bool]:
    """Whether a writer may, while "renaming" ``other`` to ``x``: delete its version 1
    without a copy, move it with a changed copy, or write a changed copy beside it (a
    version forged in another's name). Refused attempts leave the version as it was."""
    user_db.document(layout.model(p, "other")).update({"renaming_to": "x"})
    original = layout.model_version(p, "other", 1)
    doc = db.document(original).get().to_dict() or {}
    x = {"name": "x", "project": p, "created_at": doc["created_at"], "renamed_from": "other"}
    forged = {**doc, "model": "x", "metrics": {"forged": 1.0}}
    allowed = {}
    for what, copy, delete in (
        ("no copy", None, True),
        ("changed copy", forged, True),
        ("forged copy", forged, False),
    ):
        batch = user_db.batch()
        batch.create(user_db.document(layout.model(p, "x")), x)
        if copy is not None:
            batch.create(user_db.document(layout.model_version(p, "x", 1)), copy)
        if delete:
            batch.delete(user_db.document(original))
        try:
            batch.commit()
            allowed[what] = True
            break  # something was written: the next attempt would start elsewhere
        except gexc.PermissionDenied:
            allowed[what] = False
            assert db.document(original).get().to_dict() == doc
    return allowed


# Each mutation weakens one clause of the rename rules; the named attempt must then pass.
RENAME_MUTATIONS = {
    "originals go only with their copy": (
        "return to is string\n"
        "        && getAfter(modelVersionPath(p, to, v)).data.diff(resource.data).affectedKeys()\n"
        "          .hasOnly(['model']);",
        "return to is string;",
        "no copy",
    ),
    "copies are unchanged": (
        "\n        && incoming().diff(get(modelVersionPath(p, from, v)).data).affectedKeys()"
        ".hasOnly(['model']);",
        ";",
        "forged copy",
    ),
}


@pytest.mark.parametrize("name", sorted(RENAME_MUTATIONS))
def test_dropping_a_rename_clause_lets_a_writer_drop_a_version(
    rules_stack: config.Settings, db: firestore.Client, tmp_path: Path, name: str
) -> None:
    old, new, attempt = RENAME_MUTATIONS[name]
    rules = RULES_FILE.read_text(encoding="utf-8")
    assert rules.count(old) == 1, f"mutation {name!r} no longer matches firestore.rules"
    ana = as_user(rules_stack, tmp_path, "ana@example.com")
    with Metastore("renmut", settings=ana).exper("e", git_policy="off").start_run() as run:
        run.log_model("other", {"w": 0})
    bob = as_user(rules_stack, tmp_path, "bob@example.com")
    members.add_member(db, "renmut", uid_of(bob), "writer")
    load_rules(rules_stack, rules.replace(old, new))
    try:
        allowed = _drop_attempts(db, Metastore("renmut", settings=bob).db, "renmut")
    finally:
        load_rules(rules_stack, rules)
    assert allowed[attempt], f"without {name!r} the writer is still refused: {allowed}"
