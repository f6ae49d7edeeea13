"""Process groups and ports of the local stack's parts: alive, stopped, reaped, answering.

Each part runs in its own process group (gcloud's emulators are a shell
script starting java), so stopping one means signalling the whole group and
waiting for it, zombies included, to let go of its port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

from aletheia.cloud.lazy import requests

_HTTP_TIMEOUT_S = 2.0
#: Seconds a stopped group gets between SIGTERM and SIGKILL (and a port to be released).
STOP_GRACE_S = 10.0


def answers(url: str) -> bool:
    """True when ``url`` answers an HTTP GET below 500."""
    try:
        resp = requests.get(url, timeout=_HTTP_TIMEOUT_S)
    except requests.RequestException:
        return False
    return resp.status_code < 500


def alive(pid: int) -> bool:
    """True for a running process (not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)


def is_zombie(pid: int) -> bool:
    """True for a process that exited and was not reaped yet."""
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "Z"
    return False


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pgid: int) -> bool:
    """SIGTERM the process group, SIGKILL what is left after a grace period."""
    if not group_alive(pgid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        reap(pgid)
        if not group_alive(pgid) or only_zombies(pgid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    reap(pgid)
    return True


def reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def only_zombies(pgid: int) -> bool:
    """True when every process left in the group has exited."""
    members = group_members(pgid)
    # An empty scan while killpg still finds the group is a process mid-exit:
    # not done yet, so keep waiting rather than report the group stopped.
    return bool(members) and all(is_zombie(pid) for pid in members or ())


def group_members(pgid: int) -> list[int] | None:
    """Pids of the group (from /proc), or None where /proc does not exist."""
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


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: str, lines: int = 15) -> str:
    """The last lines of a log file, for an error message."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def group_stopped(pgid: int) -> bool:
    """True when every thread of every process in the group is stopped (SIGSTOP taken).

    ``killpg`` returns before a thread running on another core has taken the signal:
    until then the process can still answer a request.
    """
    for stat_path in Path("/proc").glob("[0-9]*/task/[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] not in ("T", "t", "Z", "X"):
                return False
    return True
