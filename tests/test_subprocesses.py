"""A training script's own subprocesses survive aletheia talking to Firestore meanwhile.

A subprocess started with ``preexec_fn`` (PySpark's Java gateway, anything dropping
privileges or setting a process group by hand) is forked, not spawned, and gRPC's fork
handlers run in the child. With them on (grpcio's default), the child restarts gRPC's
poller on an epoll descriptor that ``close_fds`` has just closed, and dies before it can
exec (grpc/grpc#43055): here 34 of 300 such subprocesses died while a Firestore client
was busy, each leaving an ``epoll_wait error`` line on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys

from aletheia.cloud import config

TRAINING_WITH_SUBPROCESSES = """
import subprocess, sys
from aletheia.tracking.metastore import Metastore

ms = Metastore("forks", flush_interval_s=0.01)
with ms.exper("subprocesses", git_policy="off").start_run() as run:
    died = 0
    for step in range(int(sys.argv[1])):
        run.add_metric("step", float(step))
        died += subprocess.run(["true"], preexec_fn=lambda: None).returncode != 0
    assert run.flush()
print("died", died, flush=True)
"""


def test_subprocesses_forked_while_the_run_writes_do_not_die(stack: config.Settings) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    done = subprocess.run(
        [sys.executable, "-c", TRAINING_WITH_SUBPROCESSES, "300"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["died", "0"]
    # gRPC's fork handlers log a line per fork that meets another thread inside gRPC.
    assert "fork" not in done.stderr and "epoll" not in done.stderr, done.stderr


def test_a_users_own_grpc_fork_setting_is_kept() -> None:
    probe = "import os, aletheia; print(os.environ['GRPC_ENABLE_FORK_SUPPORT'])"
    env = {**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "true"}
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert shown.stdout.strip() == "true"
