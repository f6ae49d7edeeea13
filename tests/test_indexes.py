"""Every client query in ``aletheia/cloud/queries.py`` has the index production needs.

The emulator serves any query; production Firestore refuses one whose
composite index is missing ("The query requires an index"). This test builds
every query function of ``aletheia.cloud.queries`` (no network: queries are built,
never run), reads its filters and orderings from the query's protobuf, decides
by Firestore's indexing rules which index it needs, and looks for it in
``firestore.indexes.json``:

* equality filters only (any number): served by merging the automatic
  single-field indexes, no composite index;
* one ordering or range/inequality field, or one ``array_contains``, alone:
  the automatic single-field index (map subfields such as
  ``summary.loss.last`` are indexed automatically too);
* anything else (equality + ordering on another field, several orderings,
  ``array_contains`` + anything): a composite index with the equality and
  ``array_contains`` fields first, then the orderings in order and direction;
* collection-group queries: single-field indexes exist only at collection
  scope by default, so each field needs a ``fieldOverrides`` entry with
  ``COLLECTION_GROUP`` scope, or a composite index of that scope.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.query import Query
from google.cloud.firestore_v1.types import StructuredQuery

from aletheia.cloud import layout, queries
from aletheia.tracking import runmodel

INDEX_FILE = Path(__file__).resolve().parents[1] / "firestore.indexes.json"
_OP = StructuredQuery.FieldFilter.Operator
_EQUALITY = {_OP.EQUAL, _OP.IN}
_CONTAINS = {_OP.ARRAY_CONTAINS, _OP.ARRAY_CONTAINS_ANY}
_UNARY_EQUALITY = {
    StructuredQuery.UnaryFilter.Operator.IS_NULL,
    StructuredQuery.UnaryFilter.Operator.IS_NAN,
}
_DIRECTION = {
    StructuredQuery.Direction.ASCENDING: "ASCENDING",
    StructuredQuery.Direction.DESCENDING: "DESCENDING",
}
_EXAMPLE_BY_TYPE: dict[str, Any] = {"str": "example", "int": 1, "float": 1.0, "bool": True}


@dataclass(frozen=True)
class Need:
    """What a query needs from the index file."""

    collection_group: str
    scope: str  # COLLECTION or COLLECTION_GROUP
    equality: frozenset[str]
    contains: frozenset[str]
    orders: tuple[tuple[str, str], ...]  # (field, ASCENDING|DESCENDING), in order

    @property
    def composite(self) -> bool:
        """True when the automatic single-field indexes cannot serve the query."""
        sorted_fields = len(self.orders) + len(self.contains)
        return sorted_fields > 1 or (sorted_fields == 1 and bool(self.equality))

    def suggestion(self) -> dict[str, Any]:
        """The ``firestore.indexes.json`` entry that serves the query."""
        fields: list[dict[str, str]] = [
            {"fieldPath": f, "order": "ASCENDING"} for f in sorted(self.equality)
        ]
        fields += [{"fieldPath": f, "arrayConfig": "CONTAINS"} for f in sorted(self.contains)]
        fields += [{"fieldPath": f, "order": d} for f, d in self.orders]
        return {
            "collectionGroup": self.collection_group,
            "queryScope": self.scope,
            "fields": fields,
        }


def need_of(query: Query) -> Need:
    """Read a query's scope, filters and orderings from its protobuf."""
    pb = query._to_protobuf()
    (source,) = pb.from_
    equality: set[str] = set()
    contains: set[str] = set()
    inequality: list[str] = []
    for kind, path, op in _filters(pb.where):
        if (kind == "field" and op in _EQUALITY) or (kind == "unary" and op in _UNARY_EQUALITY):
            equality.add(path)
        elif kind == "field" and op in _CONTAINS:
            contains.add(path)
        elif path not in inequality:
            inequality.append(path)
    orders = [(o.field.field_path, _DIRECTION[o.direction]) for o in pb.order_by]
    # Firestore orders by every inequality field, ascending, unless told otherwise.
    ordered = {f for f, _ in orders}
    orders += [(f, "ASCENDING") for f in sorted(inequality) if f not in ordered]
    orders = [(f, d) for f, d in orders if f != "__name__" and f not in equality]
    return Need(
        collection_group=source.collection_id,
        scope="COLLECTION_GROUP" if source.all_descendants else "COLLECTION",
        equality=frozenset(equality),
        contains=frozenset(contains),
        orders=tuple(orders),
    )


def _filters(where: StructuredQuery.Filter) -> Iterator[tuple[str, str, Any]]:
    """Flatten a filter tree into (kind, field path, operator)."""
    which = StructuredQuery.Filter.pb(where).WhichOneof("filter_type")
    if which == "field_filter":
        yield "field", where.field_filter.field.field_path, where.field_filter.op
    elif which == "unary_filter":
        yield "unary", where.unary_filter.field.field_path, where.unary_filter.op
    elif which == "composite_filter":
        op = where.composite_filter.op
        assert op == StructuredQuery.CompositeFilter.Operator.AND, (
            "OR queries need an index per disjunct: teach tests/test_indexes.py about them"
        )
        for sub in where.composite_filter.filters:
            yield from _filters(sub)


def _entry_fields(entry: dict[str, Any]) -> list[dict[str, str]]:
    fields = list(entry.get("fields", []))
    if fields and fields[-1].get("fieldPath") == "__name__":
        fields.pop()  # a trailing __name__ is implied
    return fields


def _composite_serves(entry: dict[str, Any], need: Need) -> bool:
    if (entry.get("collectionGroup"), entry.get("queryScope", "COLLECTION")) != (
        need.collection_group,
        need.scope,
    ):
        return False
    fields = _entry_fields(entry)
    k = len(need.equality) + len(need.contains)
    head, tail = fields[:k], fields[k:]
    head_ok = {f["fieldPath"] for f in head if "order" in f} == need.equality and {
        f["fieldPath"] for f in head if f.get("arrayConfig") == "CONTAINS"
    } == need.contains
    return head_ok and [(f.get("fieldPath"), f.get("order")) for f in tail] == list(need.orders)


def _group_field_indexed(index: dict[str, Any], need: Need, field: str, order: str | None) -> bool:
    """A COLLECTION_GROUP single-field index (a fieldOverrides entry) for ``field``."""
    for override in index.get("fieldOverrides", []):
        if (override.get("collectionGroup"), override.get("fieldPath")) != (
            need.collection_group,
            field,
        ):
            continue
        for idx in override.get("indexes", []):
            mode = idx.get("order") or idx.get("arrayConfig")
            if idx.get("queryScope") == "COLLECTION_GROUP" and (order is None or mode == order):
                return True
    return False


def missing_index(need: Need, index: dict[str, Any]) -> bool:
    """True if ``index`` (the parsed index file) cannot serve a query with ``need``."""
    if need.composite:
        return not any(_composite_serves(entry, need) for entry in index.get("indexes", []))
    if need.scope == "COLLECTION":
        return False  # automatic single-field indexes
    wanted = [(f, None) for f in need.equality] + [(f, "CONTAINS") for f in need.contains]
    wanted += list(need.orders)
    if not wanted:
        return False
    if any(_composite_serves(entry, need) for entry in index.get("indexes", [])):
        return False
    return not all(_group_field_indexed(index, need, f, mode) for f, mode in wanted)


# --------------------------------------------------------------------------- the query module


def query_functions() -> dict[str, Callable[..., Query]]:
    """Every public function of ``aletheia.cloud.queries`` whose first parameter is ``db``."""
    found: dict[str, Callable[..., Query]] = {}
    for name, func in inspect.getmembers(queries, inspect.isfunction):
        if name.startswith("_") or func.__module__ != queries.__name__:
            continue
        params = list(inspect.signature(func).parameters)
        if params and params[0] == "db":
            found[name] = func
    return found


def example_args(name: str, func: Callable[..., Query]) -> dict[str, Any]:
    """The registered example arguments, or values made up from the annotations."""
    if name in queries.CLIENT_QUERIES:
        return dict(queries.CLIENT_QUERIES[name])
    args = {}
    for pname, param in list(inspect.signature(func).parameters.items())[1:]:
        if param.default is not inspect.Parameter.empty:
            continue
        annotation = str(param.annotation)
        assert annotation in _EXAMPLE_BY_TYPE, (
            f"queries.{name}: give example arguments with @client_query({pname}=...)"
        )
        args[pname] = _EXAMPLE_BY_TYPE[annotation]
    return args


def all_needs(db: firestore.Client) -> dict[str, Need]:
    """``{query function: what it needs}`` for every query in aletheia.cloud.queries."""
    needs = {}
    for name, func in query_functions().items():
        query = func(db, **example_args(name, func))
        assert isinstance(query, Query), f"queries.{name} must return an unexecuted Query"
        needs[name] = need_of(query)
    return needs


def report(needs: dict[str, Need], index: dict[str, Any]) -> list[str]:
    """One line per query the index file cannot serve, with the entry to add."""
    return [
        f"queries.{name} needs {json.dumps(need.suggestion())}"
        for name, need in sorted(needs.items())
        if missing_index(need, index)
    ]


@pytest.fixture(scope="module")
def db() -> firestore.Client:
    """A client that only builds queries: nothing here talks to a server."""
    return firestore.Client(project="index-check", credentials=AnonymousCredentials())


@pytest.fixture(scope="module")
def index() -> dict[str, Any]:
    return json.loads(INDEX_FILE.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- tests


def test_every_query_function_is_found(db: firestore.Client) -> None:
    found = query_functions()
    assert {"runs_by_status", "runs_by_metric", "runs_using_dataset"} <= set(found)
    # Every registered example belongs to a function the check will build.
    assert set(queries.CLIENT_QUERIES) <= set(found)


def test_every_client_query_has_its_index(db: firestore.Client, index: dict[str, Any]) -> None:
    problems = report(all_needs(db), index)
    assert not problems, "add to firestore.indexes.json:\n" + "\n".join(problems)


def test_index_file_is_deployable(index: dict[str, Any]) -> None:
    """The shape terraform's google_firestore_index needs: scope, >= 2 fields, one mode each."""
    assert set(index) <= {"indexes", "fieldOverrides"}
    for entry in index["indexes"]:
        assert entry["queryScope"] in ("COLLECTION", "COLLECTION_GROUP"), entry
        assert len(entry["fields"]) >= 2, f"a single-field composite index is refused: {entry}"
        for f in entry["fields"]:
            assert ("order" in f) != ("arrayConfig" in f), f
    keys = [json.dumps(e, sort_keys=True) for e in index["indexes"]]
    assert len(keys) == len(set(keys)), "duplicate index entries"


def test_a_removed_index_is_reported(db: firestore.Client, index: dict[str, Any]) -> None:
    needs = all_needs(db)
    assert needs["runs_by_status"].composite
    trimmed = copy.deepcopy(index)
    trimmed["indexes"] = [
        e for e in trimmed["indexes"] if not _composite_serves(e, needs["runs_by_status"])
    ]
    assert len(trimmed["indexes"]) == len(index["indexes"]) - 1
    problems = report(needs, trimmed)
    assert len(problems) == 1
    assert problems[0].startswith("queries.runs_by_status needs")
    assert '"fieldPath": "started_at", "order": "DESCENDING"' in problems[0]


def test_a_new_query_without_index_is_reported(db: firestore.Client, index: dict[str, Any]) -> None:
    runs = db.collection(layout.runs("p", "e"))
    by_host = runs.where(filter=FieldFilter("host", "==", "h")).order_by("started_at")
    assert report({"runs_by_host": need_of(by_host)}, index) == [
        'queries.runs_by_host needs {"collectionGroup": "Runs", "queryScope": "COLLECTION", '
        '"fields": [{"fieldPath": "host", "order": "ASCENDING"}, '
        '{"fieldPath": "started_at", "order": "ASCENDING"}]}'
    ]


@pytest.mark.parametrize(
    ("build", "composite"),
    [
        (lambda c: c.order_by("summary.`val/loss`.last", direction=Query.DESCENDING), False),
        (lambda c: c.where(filter=FieldFilter("status", "==", "x")), False),
        (
            lambda c: c.where(filter=FieldFilter("a", "==", 1)).where(
                filter=FieldFilter("b", "==", 2)
            ),
            False,
        ),
        (lambda c: c.where(filter=FieldFilter("t", ">", 1)), False),
        (lambda c: c.where(filter=FieldFilter("t", ">", 1)).order_by("t"), False),
        (
            lambda c: c.where(filter=FieldFilter("a", "==", 1)).where(
                filter=FieldFilter("t", "<", 3)
            ),
            True,
        ),
        (lambda c: c.order_by("a").order_by("b"), True),
        (lambda c: c.where(filter=FieldFilter("tags", "array_contains", "x")), False),
        (lambda c: c.where(filter=FieldFilter("tags", "array_contains", "x")).order_by("t"), True),
        (lambda c: c.where(filter=FieldFilter("t", ">", 1)).order_by("u"), True),
    ],
    ids=[
        "order on map subfield",
        "one equality",
        "equalities only",
        "range alone",
        "range ordered on itself",
        "equality + range",
        "two orderings",
        "array_contains alone",
        "array_contains + order",
        "range + order on another field",
    ],
)
def test_when_a_composite_index_is_needed(
    db: firestore.Client, build: Callable[[Any], Query], composite: bool
) -> None:
    assert need_of(build(db.collection("Runs"))).composite is composite


def test_collection_group_queries_need_group_scope(
    db: firestore.Client, index: dict[str, Any]
) -> None:
    query = db.collection_group("Versions").where(filter=FieldFilter("created_by_run", "==", "r"))
    need = need_of(query)
    assert not need.composite and need.scope == "COLLECTION_GROUP"
    assert missing_index(need, {"indexes": [], "fieldOverrides": []})
    override = {
        "collectionGroup": "Versions",
        "fieldPath": "created_by_run",
        "indexes": [{"order": "ASCENDING", "queryScope": "COLLECTION_GROUP"}],
    }
    assert not missing_index(need, {"indexes": [], "fieldOverrides": [override]})


def test_metric_chunk_arrays_are_exempt_from_indexing() -> None:
    """Chunk arrays are never queried; indexing each element would slow every flush."""
    chunk = runmodel.chunk_doc("loss", 0, [])
    arrays = {name for name, value in chunk.items() if isinstance(value, list)}
    spec = json.loads(INDEX_FILE.read_text())
    exempt = {
        o["fieldPath"]
        for o in spec["fieldOverrides"]
        if o["collectionGroup"] == layout.METRICS and o["indexes"] == []
    }
    assert arrays and arrays <= exempt
