"""Firestore's own limits, checked before a write so a refusal comes with what to change.

https://firebase.google.com/docs/firestore/quotas: a write over any of them is
refused, the same way on every retry. Everything that writes a document
(runs, datasets, artifacts) checks against these first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aletheia.errors import ValidationError

#: Longest free-text value (model name, description, log dir ...).
MAX_TEXT_LENGTH = 64 * 1024

#: Largest document.
MAX_DOCUMENT_BYTES = 1024 * 1024
#: Most fields in one document, every key of a nested map counted.
MAX_DOCUMENT_FIELDS = 20_000
#: Most index entries of one document (two per indexed field, one per array element).
MAX_INDEX_ENTRIES = 40_000
#: Longest document id and field name, in UTF-8 bytes.
MAX_ID_BYTES = 1500
#: Firestore integers are 64-bit.
MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1
#: Firestore timestamps run from year 1 to year 9999 (here as epoch seconds).
MIN_TIMESTAMP_S, MAX_TIMESTAMP_S = -62_135_596_800.0, 253_402_300_799.0


def short_repr(value: object) -> str:
    """``value`` as text, shortened to what an error message can show."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}… ({len(text):,} characters)"


def is_reserved(name: str) -> bool:
    """True for Firestore's reserved ids and field names (``__x__``)."""
    return len(name) >= 4 and name.startswith("__") and name.endswith("__")


def validate_document(doc: Mapping[str, Any], what: str, hint: str) -> None:
    """Raise unless Firestore would store ``doc`` as it is: a last check before a write.

    Firestore's own limits (size, fields, index entries, reserved field
    names, 64-bit integers), checked on the whole document so a refusal
    comes before any write, with ``hint`` saying what to change.
    """
    size, count, entries = encoded_size(doc), count_fields(doc), count_index_entries(doc)
    if size > MAX_DOCUMENT_BYTES or count > MAX_DOCUMENT_FIELDS or entries > MAX_INDEX_ENTRIES:
        raise ValidationError(
            f"the {what} document would hold {size:,} bytes, {count:,} fields and "
            f"{entries:,} index entries (Firestore allows {MAX_DOCUMENT_BYTES:,} bytes, "
            f"{MAX_DOCUMENT_FIELDS:,} fields, {MAX_INDEX_ENTRIES:,} index entries)",
            hint,
        )
    check_values(doc, what)


def check_values(value: Any, what: str) -> None:
    """Field names Firestore refuses and integers beyond int64, at any depth."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or is_reserved(key) or len(key.encode()) > MAX_ID_BYTES:
                raise ValidationError(
                    f"the {what} document would have the field name {str(key)[:60]!r}, which "
                    f"Firestore refuses (names of the form __x__, or over {MAX_ID_BYTES:,} bytes)",
                    "rename it",
                )
            check_values(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            check_values(item, what)
    elif isinstance(value, int) and not MIN_INT64 <= value <= MAX_INT64:
        raise ValidationError(
            f"the {what} document would hold the integer {short_repr(value)}, beyond Firestore's "
            "64-bit integers",
            "pass it as a string (str(value))",
        )


def count_index_entries(value: Mapping[str, Any]) -> int:
    """Single-field index entries Firestore keeps for these fields (an upper estimate).

    Two per field, nested map keys included (ascending and descending), and
    one per array element (``array-contains``).
    """
    total = 0
    for v in value.values():
        total += 2
        if isinstance(v, Mapping):
            total += count_index_entries(v)
        elif isinstance(v, list | tuple):
            total += len(v)
    return total


def count_fields(value: Mapping[str, Any]) -> int:
    """Fields as Firestore counts them: every key of every map, nested maps included."""
    return sum(1 + _subfields(v) for v in value.values())


def _subfields(value: Any) -> int:
    if isinstance(value, Mapping):
        return count_fields(value)
    if isinstance(value, list | tuple):  # maps inside arrays have fields too
        return sum(_subfields(v) for v in value)
    return 0


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
