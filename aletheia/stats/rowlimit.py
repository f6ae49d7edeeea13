"""The longest row a text file may have before profiling refuses it.

Arrow's CSV and JSON readers grow a block until it holds a whole row, so
one 20 MB line is read (and held, several times over while parsed) however
small the block size: the memory a profile needs is bounded by the longest
row, not by the block size. The readers are run without
``newlines_in_values``, so a row never spans lines: bounding the bytes
between line ends (``\\n`` or ``\\r``) bounds every row. The check rides on
the reads the parser already makes (two ``find`` calls per read), so it costs
no extra pass over the data.
"""

from __future__ import annotations

import io
from typing import IO

from aletheia.errors import ValidationError

#: Longest row accepted (README "Statistics"): within the function's 512 MiB
#: even while Arrow holds a block-sized copy of it per reader thread.
MAX_ROW_BYTES = 16 << 20


class RowTooLongError(ValidationError):
    """A line of a text data file is longer than :data:`MAX_ROW_BYTES`."""


class RowLimitedReader(io.RawIOBase):
    """A read-only stream that raises :class:`RowTooLongError` at the first over-long line."""

    def __init__(self, raw: IO[bytes], limit: int = MAX_ROW_BYTES) -> None:
        super().__init__()
        self._raw = raw
        self._limit = limit
        self._run = 0  # bytes since the last line end
        self._offset = 0  # bytes read so far
        self._start = 0  # where the current line starts (for the message)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._check(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()

    def _check(self, data: bytes) -> None:
        first = _first_end(data)
        if first < 0:
            self._run += len(data)
        else:
            self._run += first
            self._fail_if_long()
            # Between the first and the last end of this read, no end may be missing
            # for more than the limit; only a read longer than the limit can hide one.
            if len(data) > self._limit:
                self._scan(data, first)
            last = max(data.rfind(b"\n"), data.rfind(b"\r"))
            self._run = len(data) - 1 - last
            self._start = self._offset + last + 1
        self._fail_if_long()
        self._offset += len(data)

    def _scan(self, data: bytes, start: int) -> None:
        while start >= 0:
            following = _first_end(data, start + 1)
            stop = following if following >= 0 else len(data)
            self._run = stop - start - 1
            self._start = self._offset + start + 1
            self._fail_if_long()
            start = following

    def _fail_if_long(self) -> None:
        if self._run > self._limit:
            raise RowTooLongError(
                f"the row starting at byte {self._start:,} is longer than "
                f"{self._limit >> 20} MiB (the longest row profiled)",
                "split very long records, or store such values as files of their own",
            )


def _first_end(data: bytes, start: int = 0) -> int:
    """Index of the first ``\\n`` or ``\\r`` at or after ``start``, or -1."""
    ends = [i for i in (data.find(b"\n", start), data.find(b"\r", start)) if i >= 0]
    return min(ends) if ends else -1
