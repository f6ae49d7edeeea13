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
import json
import math
import numbers
import unicodedata
from collections.abc import Mapping
from typing import Any

from aletheia.errors import ValidationError

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
#: Longest free-text value (model name, description, log dir ...).
MAX_TEXT_LENGTH = 64 * 1024

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
    return key


def validate_metric_value(value: object, key: str = "metric") -> float:
    """Return ``value`` as a float, or raise for anything that is not a real number.

    Accepts Python and numpy numbers and 0-d tensors/arrays (anything with
    ``.item()`` giving a real number). Booleans are refused: ``True`` is
    almost always a bug, log ``float(flag)`` when it is not.
    """
    if isinstance(value, bool):
        raise ValidationError(
            f"value of {key!r} is a bool ({value})", "log float(value) if you mean 0/1"
        )
    if not isinstance(value, numbers.Real):
        item = getattr(value, "item", None)
        if callable(item):
            try:
                value = item()
            except (TypeError, ValueError) as exc:
                raise ValidationError(
                    f"value of {key!r} is a {type(value).__name__} with more than one element",
                    "log a single number (e.g. tensor.mean().item())",
                ) from exc
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValidationError(
                f"value of {key!r} is not a number: {value!r} ({type(value).__name__})",
                "log int or float values; put text in params instead",
            )
    return float(value)


def validate_step(step: object) -> int | None:
    """``None`` or a non-negative int."""
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValidationError(f"step must be an int, got {step!r}", "pass an integer step")
    if int(step) < 0:
        raise ValidationError(f"step must be >= 0, got {step}")
    return int(step)


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


def validate_text(value: object, what: str) -> str:
    """A bounded free-text field."""
    if not isinstance(value, str):
        value = str(value)
    if len(value) > MAX_TEXT_LENGTH:
        raise ValidationError(
            f"{what} is {len(value):,} characters long (at most {MAX_TEXT_LENGTH:,})",
            "store long text as an artifact",
        )
    return value


def encoded_size(value: Any) -> int:
    """Upper estimate of the bytes a value takes in a Firestore document."""
    return len(json.dumps(value, default=str, separators=(",", ":")).encode())


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
    if key.startswith("__") and key.endswith("__"):
        raise ValidationError(f"{what} key {key!r} is reserved by Firestore", "rename it")
    return key


def _param_value(value: Any, what: str, depth: int) -> Any:
    if depth > MAX_PARAM_DEPTH:
        raise ValidationError(
            f"{what} are nested more than {MAX_PARAM_DEPTH} levels deep", "flatten them"
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
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _param_value(item(), what, depth)
        except (TypeError, ValueError):
            pass
    return str(value)
