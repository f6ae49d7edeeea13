"""Firestore writes built as raw protobuf messages: metric chunks, per-file records.

The Firestore client library encodes a document value by value into
proto-plus wrappers: for a metric chunk (three arrays of 1,000 values) that
is 3,000 wrapper objects and ~25-270 ms of Python per chunk on this machine,
all of it holding the GIL in the writer thread while the training thread
waits to log its next point, and most of a run's final flush. Building the
same ``Write`` from the protobuf classes underneath (C, via upb) produces a
byte-identical message (``tests/test_store.py`` compares them) in a tenth
of the time (each message filled where it lives, no copies; an array of
doubles, a chunk's values, parsed from its wire bytes in one C call).

Only plain values take this path: ``None``, ``bool``, ``int``, ``float``,
``str``, ``bytes``, ``datetime.datetime`` (exactly, not the library's
nanosecond subclass), lists of those and maps with string keys. Anything
else (sentinels such as ``SERVER_TIMESTAMP``, references, vectors) goes
through the library (:func:`encodable` says which). A merge
(:func:`merge_write`: ``set(..., merge=True)``, e.g. a dataset add's per-blob
registry entries, ~0.2 ms of proto-plus each) takes it too when its values
are plain or ``SERVER_TIMESTAMP`` and no map is empty
(:func:`merge_encodable`).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import struct
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
    from google.cloud.firestore_v1.types import write

    return SimpleNamespace(
        Write=write.Write,
    )


def merge_encodable(data: Mapping[str, Any]) -> bool:
    """Whether :func:`merge_write` builds ``data``'s merge (see the module doc): plain
    values, ``SERVER_TIMESTAMP`` at the top level only, at least one plain value."""
    plain = {k: v for k, v in data.items() if not _server_time(v)}
    return bool(plain) and all(isinstance(k, str) for k in data) and _merge_plain(plain)


def _merge_plain(data: Mapping[str, Any]) -> bool:
    # An empty map is a leaf by the library's rules, and maps nested in maps are recursed.
    return all(
        isinstance(k, str)
        and (_merge_plain(v) if type(v) is dict and v else type(v) is not dict and _plain(v, True))
        for k, v in data.items()
    )


def _server_time(value: Any) -> bool:
    from google.cloud.firestore_v1 import transforms

    return value is transforms.SERVER_TIMESTAMP


def merge_write(document_path: str, data: Mapping[str, Any]) -> Any:
    """The ``Write`` of ``set(data, merge=True)`` on ``document_path``: each leaf of ``data``
    written (the update mask names them), ``SERVER_TIMESTAMP`` leaves as transforms."""
    from google.cloud.firestore_v1.field_path import FieldPath

    types = _types()
    raw = types.Write.pb()()
    doc = raw.update
    doc.name = document_path
    leaves: list[tuple[str, ...]] = []
    stamps: list[tuple[str, ...]] = []
    _fill_merge(doc.fields, data, (), leaves, stamps)
    # As the library: the mask and the transforms in field-path order.
    raw.update_mask.field_paths.extend(FieldPath(*p).to_api_repr() for p in sorted(leaves))
    for path in sorted(stamps):
        raw.update_transforms.add(
            field_path=FieldPath(*path).to_api_repr(), set_to_server_value=1
        )  # REQUEST_TIME
    return types.Write.wrap(raw)


def _fill_merge(
    fields: Any,
    data: Mapping[str, Any],
    prefix: tuple[str, ...],
    leaves: list[tuple[str, ...]],
    stamps: list[tuple[str, ...]],
) -> None:
    for key, value in data.items():
        path = (*prefix, key)
        if _server_time(value):
            stamps.append(path)
        elif type(value) is dict:
            inner = fields[key].map_value
            inner.SetInParent()
            _fill_merge(inner.fields, value, path, leaves, stamps)
        else:
            _fill(fields[key], value)
            leaves.append(path)


def set_write(document_path: str, data: Mapping[str, Any]) -> Any:
    """The ``Write`` (proto-plus, wrapping the raw message) replacing the document at
    ``document_path`` (``projects/P/databases/D/documents/...``) with ``data``."""
    types = _types()
    raw = types.Write.pb()()
    doc = raw.update
    doc.name = document_path
    _fill_map(doc.fields, data)
    return types.Write.wrap(raw)


# Every message is filled where it lives (``add()``, a map entry): a message built apart and
# then assigned is copied, element by element, once per level of nesting.


def _fill_map(fields: Any, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        _fill(fields[key], value)


def _fill(target: Any, v: Any) -> None:
    kind = type(v)
    if kind is float:
        target.double_value = v
    elif kind is int:
        target.integer_value = v  # beyond int64: ValueError, as the library raises
    elif kind is dt.datetime:
        _timestamp(target.timestamp_value, v)
    elif kind is str:
        target.string_value = v
    elif v is None:
        target.null_value = 0
    elif kind is bool:
        target.boolean_value = v
    elif kind is bytes:
        target.bytes_value = v
    elif kind is list:
        array = target.array_value
        array.SetInParent()  # an empty list is an empty array, not an unset value
        if v and set(map(type, v)) == {float}:
            array.MergeFromString(_doubles(v))  # a chunk's values: parsed in C, in one call
        else:
            _fill_array(array.values, v)
    elif kind is dict:
        fields = target.map_value
        fields.SetInParent()
        _fill_map(fields.fields, v)
    else:
        raise TypeError(f"not a plain Firestore value: {kind.__name__}")


def _fill_array(values: Any, items: list[Any]) -> None:
    """The array's elements; a list of one type (a metric chunk's) in one tight loop."""
    add = values.add
    kinds = {type(x) for x in items}
    if kinds == {float}:
        for x in items:
            add(double_value=x)
    elif kinds == {int}:
        for x in items:
            add(integer_value=x)
    elif kinds == {dt.datetime}:
        for x in items:
            _timestamp(add().timestamp_value, x)
    else:
        for x in items:
            _fill(add(), x)


#: One element of ``ArrayValue.values`` holding a double: field 1 (length-delimited, 9 bytes)
#: wrapping ``Value.double_value`` (field 3, fixed 64 bits), then the value's 8 bytes.
_DOUBLE_ELEMENT = b"\x0a\x09\x19"


@functools.lru_cache(maxsize=16)
def _doubles_format(n: int) -> struct.Struct:
    return struct.Struct("<" + "3sd" * n)


def _doubles(items: list[float]) -> bytes:
    """The wire bytes of an array of doubles, packed in C: what ``add(double_value=x)`` per
    element builds (byte for byte), seven times faster, with no Python per element."""
    pairs = zip(itertools.repeat(_DOUBLE_ELEMENT), items)
    return _doubles_format(len(items)).pack(*itertools.chain.from_iterable(pairs))


def _timestamp(target: Any, v: dt.datetime) -> None:
    # As the library: a naive datetime is UTC; microseconds, then seconds and nanos.
    micros = ((v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)) - _EPOCH) // _MICRO
    target.seconds, rest = divmod(micros, 1_000_000)
    target.nanos = rest * 1000


__all__ = ["encodable", "merge_encodable", "merge_write", "set_write"]
