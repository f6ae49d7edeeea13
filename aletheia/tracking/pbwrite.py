"""Whole-document ``set`` writes built as raw protobuf messages: the metric chunks' fast path.

The Firestore client library encodes a document value by value into
proto-plus wrappers: for a metric chunk (three arrays of 1,000 values) that
is 3,000 wrapper objects and ~25-270 ms of Python per chunk on this machine,
all of it holding the GIL in the writer thread while the training thread
waits to log its next point, and most of a run's final flush. Building the
same ``Write`` from the protobuf classes underneath (C, via upb) produces a
byte-identical message (``tests/test_store.py`` compares them) in a tenth
of the time.

Only plain values take this path: ``None``, ``bool``, ``int``, ``float``,
``str``, ``bytes``, ``datetime.datetime`` (exactly, not the library's
nanosecond subclass), lists of those and maps with string keys. Anything
else (sentinels such as ``SERVER_TIMESTAMP``, references, vectors) and
every merge goes through the library (:func:`encodable` says which).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICRO = dt.timedelta(microseconds=1)
_SCALARS = (type(None), bool, int, float, str, bytes)


def encodable(data: Mapping[str, Any]) -> bool:
    """Whether every value of ``data`` takes the fast path (see the module doc)."""
    return all(isinstance(k, str) and _plain(v, True) for k, v in data.items())


def _plain(value: Any, top: bool) -> bool:
    kind = type(value)
    if kind in _SCALARS or kind is dt.datetime:
        return True
    if kind is list:
        return top and all(_plain(v, False) for v in value)  # no arrays in arrays
    if kind is dict:
        return all(isinstance(k, str) and _plain(v, True) for k, v in value.items())
    return False


@functools.cache
def _types() -> SimpleNamespace:
    """The raw protobuf classes (imported on first use: the library is slow to import)."""
    from google.cloud.firestore_v1.types import document, write
    from google.protobuf.timestamp_pb2 import Timestamp

    return SimpleNamespace(
        Value=document.Value.pb(),
        ArrayValue=document.ArrayValue.pb(),
        MapValue=document.MapValue.pb(),
        Document=document.Document.pb(),
        Write=write.Write,
        Timestamp=Timestamp,
    )


def set_write(document_path: str, data: Mapping[str, Any]) -> Any:
    """The ``Write`` (proto-plus, wrapping the raw message) replacing the document at
    ``document_path`` (``projects/P/databases/D/documents/...``) with ``data``."""
    types = _types()
    doc = types.Document(name=document_path, fields=_fields(types, data))
    return types.Write.wrap(types.Write.pb()(update=doc))


def _fields(types: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _value(types, v) for key, v in data.items()}


def _value(types: Any, v: Any) -> Any:
    value_pb = types.Value
    kind = type(v)
    if kind is float:
        return value_pb(double_value=v)
    if kind is int:
        return value_pb(integer_value=v)  # beyond int64: ValueError, as the library raises
    if kind is dt.datetime:
        # As the library: a naive datetime is UTC; microseconds, then seconds and nanos.
        micros = ((v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)) - _EPOCH) // _MICRO
        seconds, rest = divmod(micros, 1_000_000)
        return value_pb(timestamp_value=types.Timestamp(seconds=seconds, nanos=rest * 1000))
    if kind is str:
        return value_pb(string_value=v)
    if v is None:
        return value_pb(null_value=0)
    if kind is bool:
        return value_pb(boolean_value=v)
    if kind is bytes:
        return value_pb(bytes_value=v)
    if kind is list:
        items = [_value(types, x) for x in v]
        return value_pb(array_value=types.ArrayValue(values=items))
    if kind is dict:
        return value_pb(map_value=types.MapValue(fields=_fields(types, v)))
    raise TypeError(f"not a plain Firestore value: {kind.__name__}")


__all__ = ["encodable", "set_write"]
