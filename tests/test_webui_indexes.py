"""Every Firestore query the web dashboard makes has its index in firestore.indexes.json.

The emulator serves any query; production Firestore refuses one whose composite
index is missing. The dashboard builds its queries in TypeScript, so this test
reads them from the source: every ``query(...)`` call in ``web/src``, its
collection (``collection(db, paths.X(...))``, resolved through ``paths.ts``, or
``collectionGroup(db, "X")``), its ``where``/``orderBy`` constraints (also
those a helper returns, spread into the call), and decides with
tests/test_indexes.py's rules which index each needs. The runs table's filter
and sort come from the user: the columns it declares indexed
(``INDEXED_FILTERS`` in runs.ts) are checked with the sort on ``started_at``
both ways; any other pair is named by the table as needing an index.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_indexes import INDEX_FILE, Need, missing_index

WEB_SRC = Path(__file__).resolve().parents[1] / "web" / "src"
_EQUALITY = {"==", "in"}
_CONTAINS = {"array-contains", "array-contains-any"}
_DIRECTIONS = {"asc": "ASCENDING", "desc": "DESCENDING"}
#: The runs table's columns and the document fields they filter and sort (runs.ts fieldOf).
RUNS_COLUMN_FIELDS = {"status": "status", "fold": "fold", "git": "git.commit"}


@dataclass(frozen=True)
class Found:
    """One query of the app: where it is and what it needs (None: built from user input)."""

    where: str
    need: Need | None


def _balanced(text: str, start: int) -> str:
    """The text inside the parentheses opening at ``text[start]``."""
    depth, i, quote = 0, start, ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    raise AssertionError(f"unbalanced parentheses at {start}")


def _split(args: str) -> list[str]:
    """Top-level comma-separated arguments."""
    parts, depth, quote, cur = [], 0, "", ""
    for c in args:
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        cur += c
    if cur.strip():
        parts.append(cur.strip())
    return parts


def collection_ids() -> dict[str, str]:
    """``paths.ts`` function or constant -> the collection id it ends in."""
    ids = {}
    for line in (WEB_SRC / "paths.ts").read_text(encoding="utf-8").splitlines():
        m = re.match(r'export const (\w+) = "(\w+)";', line)
        if m:
            ids[m[1]] = m[2]
        m = re.match(r"export const (\w+) = \(.*\) => `.*/(\w+)`;", line)
        if m:
            ids[m[1]] = m[2]
    return ids


def _literal(arg: str) -> str | None:
    m = re.fullmatch(r'"([^"]*)"', arg.strip())
    return m[1] if m else None


def _field(arg: str) -> str:
    """A where/orderBy field: a string, or ``new FieldPath(...)`` (variable parts as ``*``)."""
    if (lit := _literal(arg)) is not None:
        return lit
    m = re.fullmatch(r"new FieldPath\((.*)\)", arg.strip())
    assert m, f"a field the check cannot read: {arg}"
    return ".".join(_literal(a) or "*" for a in _split(m[1]))


def _constraints(args: list[str], source: str) -> list[tuple[str, str, str]] | None:
    """``(kind, field, op or direction)`` of each constraint; None if built at run time."""
    out: list[tuple[str, str, str]] = []
    for arg in args:
        if arg.startswith("..."):
            m = re.fullmatch(r"\.\.\.(\w+)\(.*\)", arg, re.S)
            if not m:
                return None  # an array built from user input
            body = re.search(
                rf"function {m[1]}\([^)]*\)[^{{]*\{{\s*return \[(.*?)\];", source, re.S
            )
            assert body, f"cannot find the constraints {m[1]} returns"
            inner = _constraints(_split(body[1]), source)
            if inner is None:
                return None
            out += inner
        elif arg.startswith("where("):
            field, op, *_ = _split(_balanced(arg, arg.index("(")))
            out.append(("where", _field(field), _literal(op) or "?"))
        elif arg.startswith("orderBy("):
            field, *rest = _split(_balanced(arg, arg.index("(")))
            out.append(("order", _field(field), _literal(rest[0]) if rest else "asc"))
        else:
            assert re.match(r"(limit|startAfter|startAt|endBefore|limitToLast)\(", arg), arg
    return out


def need_of(group: str, scope: str, constraints: list[tuple[str, str, str]]) -> Need:
    """What a query needs, by Firestore's rules (as tests/test_indexes.py reads them)."""
    equality = {f for k, f, op in constraints if k == "where" and op in _EQUALITY}
    contains = {f for k, f, op in constraints if k == "where" and op in _CONTAINS}
    inequality = [
        f
        for k, f, op in constraints
        if k == "where" and op not in _EQUALITY | _CONTAINS and f not in equality
    ]
    orders = [(f, _DIRECTIONS[d]) for k, f, d in constraints if k == "order"]
    ordered = {f for f, _ in orders}
    orders += [(f, "ASCENDING") for f in sorted(set(inequality)) if f not in ordered]
    return Need(
        collection_group=group,
        scope=scope,
        equality=frozenset(equality),
        contains=frozenset(contains),
        orders=tuple((f, d) for f, d in orders if f not in equality),
    )


def app_queries() -> list[Found]:
    """Every ``query(...)`` call in web/src."""
    ids = collection_ids()
    found = []
    for path in sorted(WEB_SRC.rglob("*.ts")):
        source = path.read_text(encoding="utf-8")
        for m in re.finditer(r"\bquery\(", source):
            where = f"{path.relative_to(WEB_SRC)}:{source.count(chr(10), 0, m.start()) + 1}"
            base, *rest = _split(_balanced(source, m.end() - 1))
            if re.fullmatch(r"\w+", base):  # a collection held in a variable
                held = re.search(rf"const {base} = (collection\(.*?\)\));", source)
                assert held, f"{where}: cannot resolve {base}"
                base = held[1]
            if g := re.fullmatch(r'collectionGroup\(db, "(\w+)"\)', base):
                group, scope = g[1], "COLLECTION_GROUP"
            else:
                c = re.fullmatch(r"collection\(db, paths\.(\w+)(\(.*\))?\)", base)
                assert c and c[1] in ids, f"{where}: a collection the check cannot read: {base}"
                group, scope = ids[c[1]], "COLLECTION"
            constraints = _constraints(rest, source)
            found.append(
                Found(where, None if constraints is None else need_of(group, scope, constraints))
            )
    return found


def runs_table_needs() -> list[Need]:
    """The runs table's declared-indexed filters, each with the sort on started_at."""
    source = (WEB_SRC / "pages" / "runs.ts").read_text(encoding="utf-8")
    declared = re.search(r"export const INDEXED_FILTERS = \[(.*?)\];", source)
    assert declared, "runs.ts declares INDEXED_FILTERS"
    columns = [_literal(c) for c in _split(declared[1])]
    assert columns and all(c in RUNS_COLUMN_FIELDS for c in columns), columns
    return [
        need_of(
            "Runs",
            "COLLECTION",
            [("where", RUNS_COLUMN_FIELDS[str(c)], "=="), ("order", "started_at", d)],
        )
        for c in columns
        for d in ("asc", "desc")
    ]


@pytest.fixture(scope="module")
def index() -> dict[str, Any]:
    return json.loads(INDEX_FILE.read_text(encoding="utf-8"))


def test_the_app_queries_are_all_read() -> None:
    found = app_queries()
    shapes = {(f.need.collection_group, f.need.scope) for f in found if f.need}
    # Each page's queries: runs, datasets, model versions by dataset, projects by member.
    assert {
        ("Runs", "COLLECTION"),
        ("Runs", "COLLECTION_GROUP"),
        ("Versions", "COLLECTION_GROUP"),
    } <= shapes
    assert ("Projects", "COLLECTION") in shapes and ("Models", "COLLECTION") in shapes
    dynamic = [f.where for f in found if f.need is None]
    assert len(dynamic) == 1 and dynamic[0].startswith("pages/runs.ts"), dynamic


def test_every_query_of_the_app_has_its_index(index: dict[str, Any]) -> None:
    needs = [(f.where, f.need) for f in app_queries() if f.need]
    needs += [("runs table filter + sort", n) for n in runs_table_needs()]
    problems = [
        f"{where} needs {json.dumps(need.suggestion())}"
        for where, need in needs
        if missing_index(need, index)
    ]
    assert not problems, "add to firestore.indexes.json:\n" + "\n".join(problems)


def test_a_missing_index_of_the_crashed_filter_is_reported(index: dict[str, Any]) -> None:
    (stale,) = [f.need for f in app_queries() if f.need and "heartbeat_at" in dict(f.need.orders)]
    assert stale.equality == {"status"} and stale.orders == (("heartbeat_at", "ASCENDING"),)
    assert stale.composite and not missing_index(stale, index)
    trimmed = {
        **index,
        "indexes": [
            e
            for e in index["indexes"]
            if [f["fieldPath"] for f in e["fields"]] != ["status", "heartbeat_at"]
        ],
    }
    assert missing_index(stale, trimmed)
