"""CPU seconds the local stack's processes spend: where a slow step's time went on 2 cores.

A step that uploads is also paid for by fake-gcs-server, the storage
function, the event bridge and the emulators, all on the same cores as the
tool. The processes are read from the stack's ``state.json`` (each part's
process and everything under it); the tool's own CPU is its children's
``rusage``.
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

#: Parts of the stack whose CPU counts (the Auth emulator is idle during these steps).
PARTS = ("storage", "function", "bridge", "firestore", "pubsub")


def _tree_cpu(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def snapshot() -> dict[str, float]:
    """CPU seconds so far of each stack part and of this process's finished children ("tool")."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {"tool": usage.ru_utime + usage.ru_stime}
    stack_dir = os.environ.get("ALETHEIA_STACK_DIR")
    if not stack_dir:
        return out
    try:
        state = json.loads((Path(stack_dir) / "state.json").read_text())
    except (OSError, ValueError):
        return out
    for name in PARTS:
        part = state.get("parts", {}).get(name)
        if part and part.get("pid"):
            out[name] = _tree_cpu(int(part["pid"]))
    return out


def since(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per part between two snapshots."""
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}


def wait_quiet(
    *, window_s: float = 2.0, busy_share: float = 0.1, ceiling_s: float = 900.0
) -> float:
    """Wait until the stack has finished the work earlier steps left it (the storage
    function works through an add's events long after the add returned); seconds waited.

    Quiet: the stack's parts together used under ``busy_share`` of one core over one
    ``window_s``. Without it, a step's leftover work is billed to the next step
    measured. Gives up after ``ceiling_s`` (the next step is then measured as it is).
    """
    import time

    started = time.monotonic()
    previous = snapshot()
    while time.monotonic() - started < ceiling_s:
        time.sleep(window_s)  # the sampling window of a CPU-time rate, not a wait for an event
        now = snapshot()
        used = sum(now.get(k, 0.0) - previous.get(k, 0.0) for k in PARTS)
        previous = now
        if used < busy_share * window_s:
            break
    return time.monotonic() - started
