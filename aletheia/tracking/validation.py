"""Limits and validation of everything a user logs, in one place, run before any I/O.

Firestore refuses documents over 1 MiB and map keys it cannot address; a
metric value that is not a number would poison every chart. Each check here
raises :class:`~aletheia.errors.ValidationError` with a hint on how to fix
the call, before anything is written, so nothing is ever half-written.

Non-finite metric values (NaN, +inf, -inf) are **accepted and stored as
they are**: Firestore doubles represent them exactly, and a diverging loss
is information worth keeping. They are counted in the metric summary
(``nonfinite``) and left out of its ``min``/``max``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import numbers
import unicodedata
from collections.abc import Mapping
from typing import Any

from aletheia.cloud import layout
from aletheia.cloud.limits import (
    MAX_ID_BYTES,
    MAX_INT64,
    MAX_TIMESTAMP_S,
    MIN_INT64,
    MIN_TIMESTAMP_S,
    check_values,
    count_fields,
    count_index_entries,
    encoded_size,
    is_reserved,
    short_repr,
)
from aletheia.errors import ValidationError
from aletheia.tracking.runmodel import LATEST_FIELD

#: Longest metric name (it becomes part of a document id, percent-encoded).
MAX_METRIC_KEY_LENGTH = 250
#: Longest param/hyper-param name.
MAX_PARAM_KEY_LENGTH = 250
#: Encoded size of all params, hyper-params and other run fields set in one call.
#: Firestore's limit is 1 MiB per document; the run document also holds the
#: summary, git and env fields, so params get a bit over half of it.
MAX_PARAMS_BYTES = 512 * 1024
#: Deepest nesting of maps and lists in params (Firestore allows 20).
MAX_PARAM_DEPTH = 10

# How a run document shares those limits. The metric summary grows with every new
# metric name, so it gets a budget of its own and stops growing at it (every series is
# still stored in full); everything else in the document (params, hyper-params, model,
# tags, datasets, git, env) is checked against the rest before it is written, leaving
# room for status, error and timestamps.
#: Most metrics summarised in the run document (7 fields each).
MAX_SUMMARY_KEYS = 1000
#: Bytes (estimated) of the run document's metric summary, with room for each metric's
#: entry in ``metric_latest`` (unindexed; only written for a metric whose steps went back).
MAX_SUMMARY_BYTES = 320 * 1024
#: Bytes (estimated) of everything else in a run document.
MAX_RUN_FIELDS_BYTES = 640 * 1024
#: Fields of everything else in a run document.
MAX_RUN_FIELDS = 12_000
#: Index entries of everything else in a run document (the summary is indexed: runs are
#: sorted by a metric; its 1,000 metrics take 14,000 entries).
MAX_RUN_INDEX_ENTRIES = 24_000

_SCALARS = (str, int, float, bool, type(None), dt.datetime, bytes)


def validate_metric_key(key: object) -> str:
    """Return ``key`` if it can name a metric series, else raise."""
    if not isinstance(key, str):
        raise ValidationError(
            f"metric name must be a string, got {type(key).__name__}", "pass the name as text"
        )
    if not key or key != key.strip():
        raise ValidationError(
            f"invalid metric name {key!r}", "use a non-empty name without outer white space"
        )
    if len(key) > MAX_METRIC_KEY_LENGTH:
        raise ValidationError(
            f"metric name is {len(key)} characters long (at most {MAX_METRIC_KEY_LENGTH})",
            "shorten the metric name",
        )
    if any(unicodedata.category(ch).startswith("C") for ch in key):
        raise ValidationError(f"metric name {key!r} contains control characters")
    if is_reserved(key):
        # The name is a field of the run's summary and of its Results document.
        raise ValidationError(
            f"metric name {key!r} is reserved by Firestore (names of the form __x__)",
            "rename the metric (e.g. strip the outer underscores)",
        )
    # Percent-encoding makes a character up to 12 bytes of the chunk's document id; only
    # names longer than MAX_ID_BYTES / 12 can be too long, so only they are encoded here.
    if len(key) * 12 > MAX_ID_BYTES - 16:
        size = len(layout.metric_chunk_id(key, 0).encode())
        if size > MAX_ID_BYTES:
            raise ValidationError(
                f"metric name {key[:40]!r}… is {size:,} bytes as a document id "
                f"(Firestore allows {MAX_ID_BYTES:,})",
                "shorten the metric name",
            )
    return key


def validate_metric_value(value: object, key: str = "metric") -> float:
    """Return ``value`` as a float, or raise for anything that is not a real number.

    Accepts Python and numpy numbers and 0-d tensors/arrays (anything with
    ``.item()`` giving a real number). Booleans are refused: ``True`` is
    almost always a bug, log ``float(flag)`` when it is not.
    """
    if type(value) is float:  # the common case, on every add_metric: no ABC check
        return value
    if not isinstance(value, numbers.Real) and not isinstance(value, decimal.Decimal):
        item = getattr(value, "item", None)
        if callable(item):
            try:
                value = item()
            except (TypeError, ValueError) as exc:
                raise ValidationError(
                    f"value of {key!r} is a {type(value).__name__} with more than one element",
                    "log a single number (e.g. tensor.mean().item())",
                ) from exc
    if isinstance(value, bool):  # numpy's and torch's booleans too, through .item()
        raise ValidationError(
            f"value of {key!r} is a bool ({value})", "log float(value) if you mean 0/1"
        )
    if isinstance(value, decimal.Decimal) and not value.is_snan():
        # A number to MLflow too (numbers.Number), though not a numbers.Real.
        return _as_float(value, f"value of {key!r}")
    if not isinstance(value, numbers.Real):
        raise ValidationError(
            f"value of {key!r} is not a number: {value!r} ({type(value).__name__})",
            "log int or float values; put text in params instead",
        )
    return _as_float(value, f"value of {key!r}")


def _as_float(value: numbers.Real | decimal.Decimal, what: str) -> float:
    """``float(value)``, or a clear refusal for numbers no 64-bit float can hold (10**400)."""
    try:
        return float(value)
    except OverflowError as exc:
        raise ValidationError(
            f"{what} is too large for a 64-bit float: {short_repr(value)}",
            "log a value within ±1.8e308 (e.g. its logarithm), or float('inf') if you mean it",
        ) from exc


def validate_int(value: object, what: str) -> int:
    """An int Firestore can store (64-bit), else a clear refusal."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(f"{what} must be an int, got {value!r}", "pass an integer")
    number = int(value)
    if not MIN_INT64 <= number <= MAX_INT64:
        raise ValidationError(
            f"{what} {short_repr(number)} is beyond Firestore's 64-bit integers",
            f"use a number between {MIN_INT64:,} and {MAX_INT64:,}, or pass it as text",
        )
    return number


def validate_timestamp(value: object, what: str = "timestamp", *, per_second: int = 1) -> float:
    """Epoch seconds of ``value`` (in 1/``per_second`` s) if Firestore can store them, else raise.

    Firestore timestamps cover the years 1 to 9999.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"{what} must be a number, got {value!r}", "pass epoch time")
    seconds = _as_float(value, what) / per_second
    if not MIN_TIMESTAMP_S <= seconds <= MAX_TIMESTAMP_S:
        raise ValidationError(
            f"{what} {short_repr(value)} is outside the years 1 to 9999",
            "pass epoch time (milliseconds for MLflow, e.g. int(time.time() * 1000))",
        )
    return seconds


def validate_step(step: object, *, negative: bool = False) -> int | None:
    """``None`` or a 64-bit int, non-negative unless ``negative`` (MLflow allows them)."""
    if step is None:
        return None
    if type(step) is int and 0 <= step <= MAX_INT64:  # the common case: no ABC check
        return step
    number = validate_int(step, "step")
    if number < 0 and not negative:
        raise ValidationError(f"step must be >= 0, got {step}", "pass a non-negative step")
    return number


def is_finite(value: float) -> bool:
    """True unless NaN or infinite."""
    return math.isfinite(value)


def validate_params(params: object, what: str = "params") -> dict[str, Any]:
    """Return ``params`` as a Firestore-ready dict, or raise before any write.

    Keys must be non-empty strings; values may be numbers, strings, booleans,
    ``None``, datetimes, lists and nested dicts. Other objects (enums, paths,
    numpy scalars ...) are converted: numbers via ``.item()``, the rest to
    ``str``. The encoded size is checked against :data:`MAX_PARAMS_BYTES`.
    """
    if not isinstance(params, Mapping):
        raise ValidationError(
            f"{what} must be a dict, got {type(params).__name__}", "pass a dict (e.g. hp.to_dict())"
        )
    clean = {_param_key(k, what): _param_value(v, what, 1) for k, v in params.items()}
    size = encoded_size(clean)
    if size > MAX_PARAMS_BYTES:
        raise ValidationError(
            f"{what} are {size:,} bytes encoded (at most {MAX_PARAMS_BYTES:,})",
            "split the params across calls, or log large values as an artifact",
        )
    return clean


def validate_run_document(fields: Mapping[str, Any], what: str = "run") -> None:
    """Raise unless a run document with ``fields`` (and a full summary) fits in Firestore.

    ``fields`` is everything the document holds besides ``summary``; the
    summary has its own budget (:data:`MAX_SUMMARY_BYTES`), so a document
    that passes here is never refused for its size, however many metrics
    the run logs.
    """
    # The stored latest points are the summary's (its budget, no index entries).
    rest = {k: v for k, v in fields.items() if k not in ("summary", LATEST_FIELD)}
    hint = "log large values (configs, notes, tables, long lists) as an artifact instead"
    check_values(rest, what)
    size, count, entries = encoded_size(rest), count_fields(rest), count_index_entries(rest)
    if (
        size <= MAX_RUN_FIELDS_BYTES
        and count <= MAX_RUN_FIELDS
        and entries <= MAX_RUN_INDEX_ENTRIES
    ):
        return
    sizes = sorted(((encoded_size(v), k) for k, v in rest.items()), reverse=True)[:3]
    largest = ", ".join(f"{k} {n:,} bytes" for n, k in sizes)
    raise ValidationError(
        f"the {what} document would hold {size:,} bytes, {count:,} fields and {entries:,} "
        f"index entries besides its metric summary (at most {MAX_RUN_FIELDS_BYTES:,} bytes, "
        f"{MAX_RUN_FIELDS:,} fields, {MAX_RUN_INDEX_ENTRIES:,} index entries; largest: "
        f"{largest}); Firestore refuses documents over 1 MiB, 20,000 fields or 40,000 "
        "index entries",
        hint,
    )


#: Bytes (estimated) of one metric's entry in the summary besides its name.
SUMMARY_ENTRY_BYTES = 160
#: Bytes (estimated) of one metric's entry in ``metric_latest`` besides its name.
LATEST_ENTRY_BYTES = 48


class SummaryBudget:
    """Which metrics a run document summarises: the first ones logged, within the budget.

    Admission is decided once per metric name, in the order names are first
    logged, and stops at the first name that does not fit, so the writer and
    a later ``aletheia sync`` (replaying the journal in the same order) keep
    the same names.
    """

    def __init__(self) -> None:
        self.kept: set[str] = set()
        self.full = False
        self._bytes = 0

    def admit(self, key: str) -> bool:
        """True if ``key`` is (now) summarised."""
        if key in self.kept:
            return True
        # Its name is counted twice: the summary and a stored latest both key on it.
        cost = 2 * encoded_size(key) + SUMMARY_ENTRY_BYTES + LATEST_ENTRY_BYTES
        if (
            self.full
            or len(self.kept) >= MAX_SUMMARY_KEYS
            or self._bytes + cost > MAX_SUMMARY_BYTES
        ):
            self.full = True
            return False
        self.kept.add(key)
        self._bytes += cost
        return True

    def note(self) -> dict[str, Any]:
        """The run-document field that says the summary is capped."""
        return {
            "summary_capped": {
                "kept": len(self.kept),
                "max_keys": MAX_SUMMARY_KEYS,
                "max_bytes": MAX_SUMMARY_BYTES,
            }
        }


def _param_key(key: object, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValidationError(
            f"{what} keys must be non-empty strings, got {key!r}", "convert keys with str()"
        )
    if len(key) > MAX_PARAM_KEY_LENGTH:
        raise ValidationError(
            f"{what} key is {len(key)} characters long (at most {MAX_PARAM_KEY_LENGTH})",
            "shorten the parameter name",
        )
    if is_reserved(key):
        raise ValidationError(f"{what} key {key!r} is reserved by Firestore", "rename it")
    return key


def _param_value(value: Any, what: str, depth: int) -> Any:
    if depth > MAX_PARAM_DEPTH:
        raise ValidationError(
            f"{what} are nested more than {MAX_PARAM_DEPTH} levels deep", "flatten them"
        )
    if isinstance(value, int) and not MIN_INT64 <= value <= MAX_INT64:
        raise ValidationError(
            f"{what} hold the integer {short_repr(value)}, beyond Firestore's 64-bit integers",
            "pass it as a string (str(value))",
        )
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {_param_key(k, what): _param_value(v, what, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        # Firestore has no arrays of arrays: nested sequences are kept as text.
        return [
            str(v) if isinstance(v, list | tuple) else _param_value(v, what, depth + 1)
            for v in items
        ]
    if isinstance(value, numbers.Integral):
        return _param_value(int(value), what, depth)
    if isinstance(value, numbers.Real):
        return _as_float(value, f"a value in {what}")
    # An array or tensor as its values: its str() elides all but the ends of a long one
    # ("[0 1 2 ... 1997 1998 1999]"), which would be recorded as the value.
    for convert in ("tolist", "item"):
        method = getattr(value, convert, None)
        if callable(method):
            try:
                return _param_value(method(), what, depth)
            except (TypeError, ValueError):
                pass
    return str(value)
