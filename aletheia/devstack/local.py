"""Start, reuse, inspect and stop the local cloud stack.

Six real processes stand in for Google Cloud on a laptop::

    firestore  gcloud's Firestore emulator, loaded with firestore.rules
    pubsub     gcloud's Pub/Sub emulator (carries bucket notifications)
    storage    fake-gcs-server; publishes OBJECT_FINALIZE to Pub/Sub
    function   functions-framework serving functions/main.py
    bridge     aletheia.devstack.eventbridge: Pub/Sub -> CloudEvent -> function,
               acking on 2xx only (at-least-once, like Eventarc)
    downloads  functions-framework serving functions/main.py's HTTP ``download``
               (the dashboard's diffs and artifacts, for project members)

and, with ``auth`` (``aletheia local up --auth``), a seventh::

    auth       the Firebase Auth emulator (firebase-tools), for signing in
               as a Firebase user whose requests the rules then judge

``only`` (``aletheia local up --only firestore``) starts just the listed
parts (with what they need: storage needs pubsub, the bridge needs pubsub
and the function), for tools and tests that use one emulator alone.

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

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aletheia.cloud.config import LOCAL_CLOUD_PROJECT, STACK_STATE_FILE
from aletheia.cloud.lazy import requests
from aletheia.devstack import autoexport
from aletheia.devstack.commands import (
    check_prerequisites,
    client_env,
    command,
    default_function_source,
    default_rules_file,
    firebase_cli,
)
from aletheia.devstack.processes import (
    STOP_GRACE_S,
    alive,
    answers,
    group_alive,
    group_stopped,
    port_in_use,
    stop_group,
    tail,
)

# The stack's configuration and state are part of this module's API (``local.up(StackConfig)``).
from aletheia.devstack.stackconfig import DEFAULT_PORTS as DEFAULT_PORTS
from aletheia.devstack.stackconfig import NEEDS as NEEDS
from aletheia.devstack.stackconfig import OPTIONAL_PARTS as OPTIONAL_PARTS
from aletheia.devstack.stackconfig import PARTS as PARTS
from aletheia.devstack.stackconfig import SUBSCRIPTION, TOPIC
from aletheia.devstack.stackconfig import PartState as PartState
from aletheia.devstack.stackconfig import StackConfig as StackConfig
from aletheia.devstack.stackconfig import StackState as StackState
from aletheia.devstack.stackconfig import free_port as free_port
from aletheia.devstack.stackconfig import free_ports as free_ports
from aletheia.devstack.stackconfig import load_state as load_state
from aletheia.errors import LocalStackError

#: Where ``down`` saves the Firestore emulator's documents for the next ``up``.
FIRESTORE_DATA_DIR = autoexport.FIRESTORE_DATA_DIR

__all__ = [
    "DEFAULT_PORTS",
    "NEEDS",
    "OPTIONAL_PARTS",
    "PARTS",
    "PartState",
    "StackConfig",
    "StackState",
    "default_function_source",
    "default_rules_file",
    "down",
    "firebase_cli",
    "free_port",
    "free_ports",
    "load_state",
    "resume_part",
    "saved_firestore_data",
    "start_part",
    "status",
    "status_of",
    "stop_part",
    "suspend_part",
    "up",
]


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
    check_prerequisites(config)
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
        stop_group(state.exporter_pid)  # no periodic export races the last one
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
    running = "" if group_alive(state.exporter_pid) else " (the saver is not running!)"
    every = autoexport.describe_age(state.export_interval_s)
    return f"Firestore is saved every {every} and by `aletheia local down`{running}"


def saved_firestore_data(stack_dir: Path) -> autoexport.SavedExport | None:
    """The newest complete Firestore export of this stack, if any: its metadata file and
    when it was saved, read together (the periodic saver may replace the copy at any
    moment; ``saved_at`` stays true of what was found)."""
    return autoexport.newest_export(stack_dir)


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
        stop_group(part.pid)
        raise
    return part


def stop_part(part: PartState) -> bool:
    """Stop one started part (its whole process group)."""
    return stop_group(part.pid)


def suspend_part(part: PartState) -> None:
    """Freeze a part (SIGSTOP): it keeps its port and data but answers nothing.

    To a client this is a server that has gone away mid-conversation, the
    fault a dropped network or a hung backend produces. Returns once every thread
    of the part has stopped (a thread on the other core could still answer the
    moment ``killpg`` returns).
    """
    os.killpg(part.pid, signal.SIGSTOP)
    deadline = time.monotonic() + STOP_GRACE_S
    while not group_stopped(part.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def resume_part(part: PartState) -> None:
    """Let a suspended part run again (SIGCONT)."""
    os.killpg(part.pid, signal.SIGCONT)


# --------------------------------------------------------------------------- starting


def _start(config: StackConfig, echo: Callable[[str], None]) -> StackState:
    config.stack_dir.mkdir(parents=True, exist_ok=True)
    (config.stack_dir / "logs").mkdir(exist_ok=True)
    env = client_env(config)
    started: dict[str, PartState] = {}
    t0 = time.monotonic()
    echo(_saved_data_note(config.stack_dir))
    try:
        # The two JVMs (and node, for auth) are slow to boot, so they start together.
        slow: list[str] = [p for p in ("firestore", "pubsub", "auth") if p in config.parts]
        for name in slow:
            started[name] = _spawn(config, name)
        for name in slow:
            _wait_healthy(config, started[name])
        if "pubsub" in config.parts:
            _create_topic_and_subscription(config)
        fast: list[str] = [
            p for p in ("storage", "function", "bridge", "downloads") if p in config.parts
        ]
        for name in fast:
            started[name] = _spawn(config, name)
        for name in fast:
            _wait_healthy(config, started[name])
        if "storage" in config.parts:
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
    age = autoexport.describe_age(max(0.0, time.time() - saved.saved_at))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved.saved_at))
    return (
        f"Firestore loads the data saved {age} ago ({when}) from {saved.directory}; anything "
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


def _spawn(config: StackConfig, name: str) -> PartState:
    cmd, health_url = command(config, name)
    log_path = config.stack_dir / "logs" / f"{name}.log"
    env = {**os.environ, **client_env(config)}
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
        if not alive(part.pid):
            raise LocalStackError(
                part.name, f"exited during start-up:\n{tail(part.log)}", f"see {part.log}"
            )
        if answers(part.health_url):
            return
        time.sleep(0.2)
    raise LocalStackError(
        part.name,
        f"not healthy after {config.startup_timeout_s:.0f}s:\n{tail(part.log)}",
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
    if part is None or not alive(part.pid):
        return "stopped"
    return "healthy" if answers(part.health_url) else "unhealthy"


def _stop_and_release(part: PartState) -> bool:
    """Stop a part and wait (briefly) until the kernel has released its port.

    The process can be gone a moment before its listening socket is, and a
    caller that starts again at once must not find the port taken.
    """
    stopped = stop_group(part.pid)
    host, _, port = part.address.rpartition(":")
    deadline = time.monotonic() + STOP_GRACE_S
    while port_in_use(host, int(port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return stopped
