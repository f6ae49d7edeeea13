"""Text encodings of data files that are not UTF-8.

Two kinds are common in shipped tables, and each read as something else
records wrong text:

- **UTF-16** (and, rarely, UTF-32) with a byte-order mark: what Excel's
  "Unicode text" export and many Windows tools write. Read as UTF-8 or
  Latin-1, every character is split around NUL bytes.
- **Windows-1252**: what a Western Windows machine writes for "CSV"
  (Excel's default). It is Latin-1 except in 0x80-0x9F, where it has the
  euro sign, curly quotes, dashes, the ellipsis and others; read as Latin-1
  they become invisible control characters. It is read here as the WHATWG
  standard reads it (what browsers do with text labelled Latin-1):
  Windows-1252, with the five bytes it leaves undefined taken as Latin-1, so
  no byte fails to decode.
"""

from __future__ import annotations

import codecs
import encodings.cp1252
from typing import Any

#: Byte-order marks and their encodings, longest first (UTF-32-LE's starts with UTF-16-LE's).
_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

#: The codec name of Windows-1252 as the WHATWG Encoding Standard defines it.
WINDOWS_1252 = "aletheia-windows-1252"
#: What a profile says of a file read as Windows-1252.
WINDOWS_1252_NOTE = "text is not valid UTF-8: decoded as Windows-1252 (Latin-1)"

_DECODING_TABLE = "".join(
    chr(byte) if char == "\ufffe" else char
    for byte, char in enumerate(encodings.cp1252.decoding_table)
)


def marked(head: bytes) -> str | None:
    """The encoding a byte-order mark at the start of ``head`` declares (not UTF-8's)."""
    return next((name for mark, name in _MARKS if head.startswith(mark)), None)


def decode(data: bytes, encoding: str | None) -> str:
    """``data`` as text in ``encoding`` (UTF-8 when None), bad or cut-off bytes replaced."""
    return data.decode(encoding or "utf-8", errors="replace")


def _decode(data: Any, errors: str = "strict") -> tuple[str, int]:
    return codecs.charmap_decode(data, errors, _DECODING_TABLE)


def _encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    return codecs.charmap_encode(text, errors, encodings.cp1252.encoding_table)


class _IncrementalDecoder(codecs.IncrementalDecoder):
    def decode(self, data: Any, final: bool = False) -> str:
        return _decode(data, self.errors)[0]


class _IncrementalEncoder(codecs.IncrementalEncoder):
    def encode(self, text: str, final: bool = False) -> bytes:
        return _encode(text, self.errors)[0]


def _search(name: str) -> codecs.CodecInfo | None:
    if name != WINDOWS_1252.replace("-", "_"):
        return None
    return codecs.CodecInfo(
        name=WINDOWS_1252,
        encode=_encode,
        decode=_decode,
        incrementalencoder=_IncrementalEncoder,
        incrementaldecoder=_IncrementalDecoder,
    )


# Known to Python's codecs, and so to pyarrow's readers, once this module is imported.
codecs.register(_search)
