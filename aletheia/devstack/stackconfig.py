"""What the local stack is made of: its parts, their ports, and the state file that records them."""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aletheia.cloud.config import (
    LOCAL_BUCKET,
    LOCAL_CLOUD_PROJECT,
    STACK_STATE_FILE,
    read_stack_state,
)
from aletheia.devstack import autoexport
from aletheia.errors import ConfigError

#: Topic fake-gcs-server publishes object notifications to, and the bridge's subscription.
TOPIC = "aletheia-objects"
SUBSCRIPTION = "aletheia-objects-function"
#: Name of the CloudEvent function in functions/main.py.
FUNCTION_TARGET = "on_object_finalized"
#: Name of the HTTP download function in functions/main.py (the dashboard's diffs and artifacts).
DOWNLOADS_TARGET = "download"

DEFAULT_PORTS = {
    "firestore": 8681,
    "storage": 8682,
    "pubsub": 8683,
    "function": 8684,
    "bridge": 8685,
    "auth": 8686,
    "downloads": 8687,
}
PARTS = ("firestore", "pubsub", "storage", "function", "bridge", "downloads")
#: Parts started only when asked for.
OPTIONAL_PARTS = ("auth",)
#: Parts another part cannot start without: fake-gcs-server publishes its notifications to
#: Pub/Sub, and the bridge carries them from Pub/Sub to the function.
NEEDS = {"storage": ("pubsub",), "bridge": ("pubsub", "function")}


@dataclass
class StackConfig:
    """What to start and where. Every field has a working default."""

    stack_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    host: str = "127.0.0.1"
    cloud_project: str = LOCAL_CLOUD_PROJECT
    bucket: str = LOCAL_BUCKET
    rules_file: Path | None = None
    function_source: Path | None = None
    startup_timeout_s: float = 90.0
    auth: bool = False
    #: Seconds between periodic exports of the Firestore emulator's documents (0: none).
    export_interval_s: float = autoexport.EXPORT_INTERVAL_S
    #: Start only these parts (empty: every part, and auth with ``auth``). A tool or test that
    #: needs Firestore alone then waits for one JVM, not two JVMs and four more processes.
    only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [p for p in self.only if p not in PARTS + OPTIONAL_PARTS]
        if unknown:
            raise ConfigError(
                f"unknown local stack part(s): {', '.join(unknown)}",
                f"choose among {', '.join(PARTS + OPTIONAL_PARTS)}",
            )
        missing = sorted(
            {need for p in self.only for need in NEEDS.get(p, ()) if need not in self.only}
        )
        if missing:
            raise ConfigError(
                f"the local stack parts {', '.join(self.only)} also need {', '.join(missing)}",
                f"add {', '.join(missing)} to the parts to start",
            )

    def address(self, part: str) -> str:
        """``host:port`` of a part."""
        return f"{self.host}:{self.ports[part]}"

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts this configuration starts, in start order."""
        if self.only:
            return tuple(p for p in PARTS + OPTIONAL_PARTS if p in self.only)
        return PARTS + (("auth",) if self.auth else ())


@dataclass
class PartState:
    """A started process: what it is, its process group, and how to check it."""

    name: str
    pid: int
    address: str
    health_url: str
    log: str


@dataclass
class StackState:
    """What ``state.json`` holds."""

    parts: dict[str, PartState]
    env: dict[str, str]
    started_at: float
    #: The periodic exporter's process group (not a part: it serves no client).
    exporter_pid: int | None = None
    #: Seconds between its exports (0: Firestore is saved only by ``down``).
    export_interval_s: float = 0.0

    def to_json(self) -> str:
        """Serialise for the state file."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackState:
        """Parse what :meth:`to_json` wrote."""
        parts = {k: PartState(**v) for k, v in data.get("parts", {}).items()}
        return cls(
            parts=parts,
            env=dict(data.get("env", {})),
            started_at=data.get("started_at", 0),
            exporter_pid=data.get("exporter_pid"),
            export_interval_s=float(data.get("export_interval_s") or 0.0),
        )

    @property
    def part_names(self) -> tuple[str, ...]:
        """The parts this stack runs: the usual ones, then the optional ones."""
        return tuple(p for p in PARTS + OPTIONAL_PARTS if p in self.parts)


def load_state(stack_dir: Path) -> StackState | None:
    """The recorded state of the stack in ``stack_dir``, or ``None``."""
    data = read_stack_state(stack_dir)
    try:
        return StackState.from_dict(data) if data else None
    except (TypeError, AttributeError, ValueError) as exc:  # written by us, then damaged
        path = stack_dir / STACK_STATE_FILE
        raise ConfigError(
            f"local stack state {path} is damaged: {exc}",
            f"stop any emulators still running from {stack_dir}, delete {path}, "
            "then run `aletheia local up`",
        ) from exc


def free_ports(host: str = "127.0.0.1") -> dict[str, int]:
    """Distinct free ports for every part, optional ones included (``--ports auto``, tests)."""
    names = PARTS + OPTIONAL_PARTS
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(names):
        ports = {part: free_port(host) for part in names}
    return ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for tests and ``--ports auto``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
