"""aletheia: a serverless experiment and data tracker on Google Cloud.

The public names are imported when first used (PEP 562): ``import aletheia``
and the CLI's ``--help`` load no tracker, and ``from aletheia import
Metastore`` loads the tracker but not the Firestore client, which comes with
the first client built (:mod:`aletheia.cloud.lazy`).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from aletheia.errors import (
    AletheiaError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    CredentialsError,
    GitPolicyError,
    IntegrityError,
    LocalStackError,
    NotFoundError,
    ValidationError,
)

if TYPE_CHECKING:
    from aletheia.cloud.config import Settings, resolve
    from aletheia.tracking.metastore import Experiment, Metastore, Run

__version__ = "0.1.0"

# gRPC's fork handlers, on by default, restart its poller in the child of every fork; a
# child forked by subprocess (``preexec_fn``: PySpark's Java gateway, a script's own
# tools) has just closed that poller's epoll descriptor and dies before it execs
# (grpc/grpc#43055: 11 of 300 such subprocesses of a training run died here). aletheia
# never uses a client across a fork, so the handlers only do harm; set before gRPC is
# imported, which reads it once. A user's own setting stands.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

#: Public names defined elsewhere, and the module each is imported from on first use.
_LAZY = {
    "Settings": "aletheia.cloud.config",
    "resolve": "aletheia.cloud.config",
    "Experiment": "aletheia.tracking.metastore",
    "Metastore": "aletheia.tracking.metastore",
    "Run": "aletheia.tracking.metastore",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use, then keep it as a plain attribute."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AletheiaError",
    "BackendUnavailableError",
    "ConfigError",
    "ConflictError",
    "CredentialsError",
    "Experiment",
    "GitPolicyError",
    "IntegrityError",
    "LocalStackError",
    "Metastore",
    "NotFoundError",
    "Run",
    "Settings",
    "ValidationError",
    "__version__",
    "resolve",
]
