"""What a run search asks for: filters, ordering and pages, decided without I/O.

A search is a :class:`RunSearch`: which runs (effective status, params,
model, dataset, debug), in which order (``order_by`` terms in MLflow's
syntax: ``"metrics.val/acc DESC"``, ``"params.lr"``,
``"attributes.start_time DESC"``) and which page (``limit`` and an opaque
``page_token``). The reader (:mod:`aletheia.tracking.reading`) decides what
Firestore can do for it; whatever is left is done here, by one rule:

* a run matches when every filter holds (:meth:`RunSearch.matches`);
* runs are compared term by term; in every term a run *without* a value
  (the metric was never logged, it is NaN, the param is unset) comes last,
  whichever the direction; numbers compare as numbers, text as text, and
  numbers come before text;
* ties are broken by experiment name, then run id, in the direction of the
  first term: the order Firestore itself gives documents with equal values,
  so a page read in the server's order and one sorted here agree.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from aletheia.cloud import layout
from aletheia.errors import ValidationError
from aletheia.tracking.runmodel import CRASHED, RUNNING, STATUSES

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; only the type checker reads it
    from typing_extensions import Unpack


class RunQuery(TypedDict, total=False):
    """A run search's arguments, written once: ``exper.runs(**query)``, every reader's
    ``search_runs(experiments, **query)`` and :func:`run_search` take these keywords.

    ``status``: effective status(es) (a ``running`` run whose heartbeat went
    stale is ``crashed``); ``params``: ``{key: value}`` on params or
    hyper-params; ``model``: model name; ``dataset``: ``name`` or
    ``name@version``; ``debug``: None for all runs, False without debug runs,
    True only them. ``order_by``: terms like ``"metrics.val/acc DESC"``,
    ``"params.lr"``, ``"attributes.start_time DESC"`` (a reader's default:
    newest start first). ``limit`` and ``page_token`` page through the
    result (the page's ``next_page_token``).
    """

    status: str | Iterable[str] | None
    params: Mapping[str, Any] | None
    model: str | None
    dataset: str | None
    debug: bool | None
    order_by: str | Sequence[str] | None
    limit: int | None
    page_token: str | None


#: Attributes a search may order by: ``attributes.<name>`` -> how to read it from a run.
ATTRIBUTES: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "start_time": lambda d: d.get("started_at"),
    "end_time": lambda d: d.get("ended_at"),
    "status": lambda d: d.get("status"),
    "run_id": lambda d: d.get("run"),
    "run_name": lambda d: d.get("run_name") or d.get("run"),
    "experiment": lambda d: d.get("experiment"),
    "number": lambda d: d.get("number"),
    "fold": lambda d: d.get("fold"),
    "model": lambda d: model_name(d),
}
_ORDER_KINDS = ("metrics", "params", "attributes")
_ORDER_HINT = (
    'order by "metrics.<name> [ASC|DESC]", "params.<name>" or '
    f'"attributes.<{"|".join(ATTRIBUTES)}>"'
)


@dataclass(frozen=True)
class OrderTerm:
    """One ``order_by`` term: ``kind`` (metrics, params, attributes), ``key``, direction."""

    kind: str
    key: str
    descending: bool = False

    def value(self, doc: Mapping[str, Any]) -> Any:
        """The value of this term for a run document (None when it has none)."""
        if self.kind == "metrics":
            return last_metric(doc, self.key)
        if self.kind == "params":
            return param_value(doc, self.key)
        return ATTRIBUTES[self.key](doc)


def parse_order_by(terms: str | Sequence[str] | None) -> tuple[OrderTerm, ...]:
    """``"metrics.val/acc DESC"`` (or a list of such) as terms; a bare key means ``params.``.

    Raises :class:`ValidationError` naming the accepted forms.
    """
    if terms is None:
        return ()
    parsed = []
    for text in [terms] if isinstance(terms, str) else terms:
        words = str(text).strip().rsplit(None, 1)
        descending = False
        if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
            descending = words[1].upper() == "DESC"
            words = words[:1]
        spec = words[0] if words else ""
        kind, dot, key = spec.partition(".")
        if not dot:
            kind, key = "params", spec
        kind = {"metric": "metrics", "param": "params", "attribute": "attributes"}.get(kind, kind)
        if kind not in _ORDER_KINDS or not key or (kind == "attributes" and key not in ATTRIBUTES):
            raise ValidationError(f"cannot order by {text!r}", _ORDER_HINT)
        parsed.append(OrderTerm(kind, key, descending))
    return tuple(parsed)


def model_name(doc: Mapping[str, Any]) -> str | None:
    """The name of a run's model (``model.name``), if it has one."""
    model = doc.get("model")
    name = model.get("name") if isinstance(model, Mapping) else None
    return str(name) if name is not None else None


def last_metric(doc: Mapping[str, Any], name: str) -> float | None:
    """The last value of metric ``name`` from a run's summary (None if absent or not a number)."""
    value = ((doc.get("summary") or {}).get(name) or {}).get("last")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def param_value(doc: Mapping[str, Any], key: str) -> Any:
    """A param or, failing that, a hyper-param of a run (None when it has neither)."""
    for group in ("params", "hyper_params"):
        values = doc.get(group) or {}
        if key in values:
            return values[key]
    return None


def text(value: Any) -> str:
    """A value as a person reads it (and as ``--param KEY=VALUE`` matches it)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list | tuple) or hasattr(value, "items"):
        return json.dumps(_plain(value), default=str, sort_keys=True)
    return str(value)


def _plain(value: Any) -> Any:
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dataset_names(doc: Mapping[str, Any]) -> set[str]:
    """``name`` and ``name@version`` of every dataset version a run recorded using."""
    found: set[str] = set()
    for ref in doc.get("dataset_refs") or ():
        found.update((str(ref), str(ref).partition("@")[0]))
    for entry in doc.get("datasets") or ():
        if isinstance(entry, Mapping) and entry.get("name"):
            found.add(str(entry["name"]))
            if entry.get("version"):
                found.add(f"{entry['name']}@{entry['version']}")
    return found


def stored_statuses(statuses: Iterable[str]) -> list[str]:
    """Stored ``status`` values that can have these effective statuses.

    A ``crashed`` run may still be stored as ``running`` (its heartbeat went
    stale and nobody settled it yet).
    """
    stored = set(statuses)
    if CRASHED in stored:
        stored.add(RUNNING)
    return sorted(stored)


@dataclass(frozen=True)
class RunSearch:
    """A search: filters, order and page. Build it with :func:`run_search`."""

    statuses: frozenset[str] = frozenset()
    params: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    dataset: str | None = None
    debug: bool | None = None  # None: debug runs too; False: none; True: only them
    order: tuple[OrderTerm, ...] = ()
    limit: int | None = None
    offset: int = 0

    @property
    def needed(self) -> int | None:
        """How many runs, in order, this page needs to know (None: all of them): those
        before it, its own, and one more, which says whether a next page exists."""
        return None if self.limit is None else self.offset + self.limit + 1

    def ordered_by(self, terms: str | Sequence[str]) -> RunSearch:
        """This search in the order of ``terms`` (a reader's default order)."""
        return dataclasses.replace(self, order=parse_order_by(terms))

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """True if a run (with its *effective* status in ``status``) passes every filter."""
        if self.statuses and doc.get("status") not in self.statuses:
            return False
        if self.debug is not None and bool(doc.get("debug")) != self.debug:
            return False
        if self.model is not None and model_name(doc) != self.model:
            return False
        if self.dataset is not None and self.dataset not in dataset_names(doc):
            return False
        return all(_param_matches(param_value(doc, k), v) for k, v in self.params.items())

    def sort_key(self) -> Callable[[Mapping[str, Any]], Any]:
        """The key sorting run documents in this search's order (see the module's rule)."""
        terms = self.order
        descending_ties = bool(terms) and terms[0].descending

        def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
            for term in terms:
                found = _compare_values(term.value(a), term.value(b), term.descending)
                if found:
                    return found
            ties = (str(a.get("experiment")), str(a.get("run")))
            other = (str(b.get("experiment")), str(b.get("run")))
            result = (ties > other) - (ties < other)
            return -result if descending_ties else result

        return functools.cmp_to_key(compare)

    def page(self, ordered: Sequence[Any]) -> tuple[list[Any], str | None]:
        """This page of ``ordered`` (every matching run, in order) and the next page's token."""
        end = len(ordered) if self.limit is None else self.offset + self.limit
        token = page_token(end) if end < len(ordered) else None
        return list(ordered[self.offset : end]), token


def is_missing(value: Any) -> bool:
    """True for a value that sorts last whatever the direction: None and NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _param_matches(stored: Any, wanted: Any) -> bool:
    if stored is None:
        return wanted is None
    if bool(stored == wanted) or str(stored) == str(wanted):
        return True
    return text(stored) == text(wanted) or text(stored) == str(wanted)


def _rank(value: Any) -> tuple[int, Any]:
    """(0, number), (1, text) or (2, None) for a value that sorts last."""
    if is_missing(value):
        return 2, None
    if isinstance(value, int | float):  # bool included: False < True
        return 0, float(value)
    if hasattr(value, "timestamp"):
        return 0, value.timestamp()
    return 1, text(value)


def _compare_values(a: Any, b: Any, descending: bool) -> int:
    (ra, va), (rb, vb) = _rank(a), _rank(b)
    if ra == 2 or rb == 2:
        return (ra == 2) - (rb == 2)  # missing last, in either direction
    if ra != rb:
        return -1 if ra < rb else 1
    result = (va > vb) - (va < vb)
    return -result if descending else result


def page_token(offset: int) -> str:
    """An opaque token for the page starting at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def parse_page_token(token: str | None) -> int:
    """The offset a :func:`page_token` stands for (0 for None)."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValidationError(
            f"{token!r} is not a page token of a run search",
            "pass the next_page_token of the previous page, unchanged",
        ) from exc
    if not isinstance(offset, int) or offset < 0:
        raise ValidationError(f"{token!r} is not a page token of a run search", "start over")
    return offset


def run_search(**query: Unpack[RunQuery]) -> RunSearch:
    """Check a search's arguments (before any I/O) and build it."""
    unexpected = sorted(set(query) - RunQuery.__optional_keys__)
    if unexpected:  # keywords are not checked by Python once they travel as a dict
        raise ValidationError(
            f"a run search takes no {', '.join(map(repr, unexpected))}",
            f"search with {', '.join(sorted(RunQuery.__optional_keys__))}",
        )
    status, limit, dataset = query.get("status"), query.get("limit"), query.get("dataset")
    statuses = frozenset([status] if isinstance(status, str) else status or ())
    unknown = sorted(statuses - set(STATUSES))
    if unknown:
        raise ValidationError(
            f"unknown run status {', '.join(map(repr, unknown))}", f"use {', '.join(STATUSES)}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError(f"limit must be a positive int, got {limit!r}", "e.g. limit=20")
    if dataset is not None:
        name, at, version = str(dataset).partition("@")
        dataset = layout.dataset_ref(name, version) if at else layout.validate_id(name, "dataset")
    return RunSearch(
        statuses=statuses,
        params=dict(query.get("params") or {}),
        model=query.get("model"),
        dataset=dataset,
        debug=query.get("debug"),
        order=parse_order_by(query.get("order_by")),
        limit=limit,
        offset=parse_page_token(query.get("page_token")),
    )


__all__ = [
    "ATTRIBUTES",
    "OrderTerm",
    "RunQuery",
    "RunSearch",
    "dataset_names",
    "is_missing",
    "last_metric",
    "model_name",
    "page_token",
    "param_value",
    "parse_order_by",
    "parse_page_token",
    "run_search",
    "stored_statuses",
    "text",
]
