"""Firestore's documented storage size of a document, computed from what was read back.

The emulator reports no sizes, so the benchmark applies Firestore's published
rules (a string is its UTF-8 length + 1, numbers and timestamps 8, a map the
sum of its keys and values, a document its name + fields + 32).
"""

from __future__ import annotations

import datetime
from typing import Any


def value_size(value: Any) -> int:
    """Storage size of one field value."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, (int, float, datetime.datetime)):
        return 8
    if isinstance(value, str):
        return len(value.encode()) + 1
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(value_size(v) for v in value)
    if isinstance(value, dict):
        return sum(len(k.encode()) + 1 + value_size(v) for k, v in value.items())
    return 16  # geo points and references


def document_size(path: str, data: dict[str, Any]) -> int:
    """Storage size of the document at ``path`` (``Coll/doc/Coll/doc``) holding ``data``."""
    name = sum(len(part.encode()) + 1 for part in path.split("/")) + 16
    return name + value_size(data) + 32
