"""The Google client libraries and ``requests``, imported on first use.

``google.cloud.firestore`` and ``google.api_core.exceptions`` pull in gRPC,
protobuf and asyncio: most of a second of start-up on a small machine. A
training script that only imports aletheia, and a CLI command that never
talks to Firestore (``aletheia --help``, ``aletheia local status``), should
not pay for them. Modules write ``from aletheia.cloud.lazy import firestore``
instead of ``from google.cloud import firestore`` and use the name exactly as
before; the real module is imported the first time an attribute is read.
The type checker sees the real modules.

Only names read at call time may come from here: a module-level use (a base
class, a decorator, a tuple of exception types) imports the library when the
module is imported, which is what this module exists to avoid.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any


class LazyModule:
    """Stands in for a module until one of its attributes is read, then delegates to it."""

    def __init__(self, name: str) -> None:
        self._lazy_name = name

    def _load(self) -> ModuleType:
        # import_module is thread-safe and cached in sys.modules; a second load is a dict lookup.
        return importlib.import_module(self._lazy_name)

    def __getattr__(self, attr: str) -> Any:
        # Only called for names not on the proxy itself: every name of the real module.
        return getattr(self._load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._load())

    def __repr__(self) -> str:
        return f"<lazy module {self._lazy_name!r}>"


if TYPE_CHECKING:
    import requests as requests
    from google.api_core import exceptions as gexc
    from google.cloud import firestore as firestore
    from google.cloud import storage as storage  # type: ignore[attr-defined]
else:
    requests = LazyModule("requests")
    gexc = LazyModule("google.api_core.exceptions")
    firestore = LazyModule("google.cloud.firestore")
    storage = LazyModule("google.cloud.storage")

__all__ = ["LazyModule", "firestore", "gexc", "requests", "storage"]
