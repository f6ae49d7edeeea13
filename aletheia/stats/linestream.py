"""A read-only byte stream made of generated lines (what pyarrow's readers pull from).

The JSON rewrites (:mod:`aletheia.stats.jsonarray`, :mod:`aletheia.stats.jsontext`)
produce one line at a time (each encoded by :func:`json_line`); this hands pyarrow
whatever number of bytes it asks for, holding at most one line beyond it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any


def json_line(value: Any) -> bytes:
    """``value`` as one compact JSON Lines line (UTF-8, newline-terminated)."""
    return json_text(value).encode() + b"\n"


def json_text(value: Any) -> str:
    """``value`` as compact JSON text, non-ASCII characters kept as they are."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class LineStream(io.RawIOBase):
    """Bytes of the lines :meth:`_lines` yields, in order, for ``readinto``."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = b""
        self._generated: Iterator[bytes] | None = None

    def _lines(self) -> Iterator[bytes]:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._generated is None:
            self._generated = self._lines()
        want = len(buffer)
        chunks, size = [self._pending], len(self._pending)
        while size < want:
            line = next(self._generated, None)
            if line is None:
                break
            chunks.append(line)
            size += len(line)
        data = b"".join(chunks)
        n = min(want, len(data))
        buffer[:n] = data[:n]
        self._pending = data[n:]
        return n
