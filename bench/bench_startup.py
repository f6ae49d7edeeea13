"""Benchmark 6: start-up of the command line and of the training-side import, beside DVC and MLflow.

Every command runs as a fresh process, ``RUNS`` times after one warm-up
run; the table gives the median wall time, the median CPU time (user +
system, from the children's rusage: less sensitive than wall time to other
load on a shared machine) and each time as a multiple of aletheia's. The
floor is the interpreter itself (``python -c pass``, with this
environment's ``.pth`` hooks). ``aletheia runs list -e E -n 20`` runs on a
seeded experiment, so its time includes one Firestore query.

Counted, not timed (what the smoke test asserts): the heavy modules each
aletheia start-up left loaded (gRPC, the Firestore and Storage clients,
pyarrow, MLflow …): none for ``--help`` and ``import aletheia``.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import PEER_MISSING, Context, Section, Table, fmt_s, median, ratio

EXPER = "bench-startup"
#: Modules whose presence after start-up is the regression (tests/test_startup.py checks the same).
HEAVY = (
    "google.cloud.firestore",
    "google.cloud.storage",
    "google.api_core.exceptions",
    "grpc",
    "pyarrow",
    "numpy",
    "duckdb",
    "mlflow",
)
TARGETS = {"aletheia --help": 0.2, "import aletheia": 0.3, "aletheia runs list -e E -n 20": 0.6}


def _bin(name: str) -> str | None:
    """A console script of this interpreter's environment, or None when not installed."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else None


def measure(cmd: Sequence[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``runs`` fresh runs of ``cmd`` (after one warm-up)."""
    check_run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if check_run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{check_run.stderr[-2000:]}")
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return median(walls), median(cpus)


def heavy_loaded(code: str, env: dict[str, str]) -> list[str]:
    """The :data:`HEAVY` modules a fresh interpreter running ``code`` left loaded."""
    probe = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: print(json.dumps([m for m in {HEAVY!r} if m in sys.modules])))\n"
        f"{code}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"start-up probe failed:\n{done.stderr[-2000:]}")
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def seed_runs(ctx: Context, count: int) -> None:
    """``count`` finished runs in :data:`EXPER`, for ``runs list`` to read."""
    from aletheia.cloud import clients, config, layout

    db = clients.firestore_client(config.resolve())
    db.document(layout.experiment(ctx.project, EXPER)).set(
        {"name": EXPER, "next_run_id": count + 1, "created_at": dt.datetime.now(dt.timezone.utc)}
    )
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    batch = db.batch()
    for n in range(1, count + 1):
        batch.set(
            db.document(layout.run(ctx.project, EXPER, str(n))),
            {
                "project": ctx.project,
                "experiment": EXPER,
                "status": "finished",
                "started_at": t0 + dt.timedelta(minutes=n),
                "ended_at": t0 + dt.timedelta(minutes=n + 1),
                "params": {"seed": n},
                "summary": {"loss": {"last": 1.0 / n, "min": 1.0 / n, "max": 1.0, "count": 1}},
            },
        )
        if n % 500 == 0:
            batch.commit()
            batch = db.batch()
    if count % 500:
        batch.commit()


def run(ctx: Context) -> Section:
    """Time each start-up, aletheia's and its peers', and count what aletheia's load."""
    section = Section(
        "startup", "6. Start-up: the CLI and `import aletheia`, beside DVC and MLflow"
    )
    runs = ctx.sized(15, 1)  # after one warm-up run each
    count = ctx.sized(1_000, 30)
    env = ctx.subprocess_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package runs from its bytecode cache
    seed_runs(ctx, count)
    py = sys.executable
    aletheia = _bin("aletheia") or "aletheia"
    commands: list[tuple[str, list[str] | None]] = [
        ("python -c pass (interpreter floor)", [py, "-c", "pass"]),
        ("aletheia --help", [aletheia, "--help"]),
        ("dvc --help", [b, "--help"] if (b := _bin("dvc")) else None),
        ("mlflow --help", [b, "--help"] if (b := _bin("mlflow")) else None),
        ("git --help", ["git", "--help"]),
        ("import aletheia", [py, "-c", "import aletheia"]),
        ("from aletheia import Metastore", [py, "-c", "from aletheia import Metastore"]),
        ("import mlflow", [py, "-c", "import mlflow"]),
        ("import dvc.api", [py, "-c", "import dvc.api"]),
        ("aletheia runs list -e E -n 20", [aletheia, "runs", "list", "-e", EXPER, "-n", "20"]),
    ]
    measured: dict[str, tuple[float, float]] = {}
    table = Table(
        f"median of {runs} fresh processes each",
        ["command", "wall", "CPU (user+sys)", "wall / aletheia's", "target"],
    )
    section.tables.append(table)
    missing: dict[str, str] = {}
    for label, cmd in commands:
        if cmd is None:
            missing[label] = PEER_MISSING
            continue
        try:
            measured[label] = measure(cmd, env, runs)
        except (RuntimeError, OSError) as exc:
            if "aletheia" in label:
                raise
            missing[label] = PEER_MISSING
            section.note(f"{label}: {str(exc).splitlines()[0]}")
    for label, _cmd in commands:
        if label in missing:
            table.add(f"`{label}`", missing[label], "-", "-", "-")
            continue
        wall, cpu = measured[label]
        base = _baseline(label, measured)
        target = TARGETS.get(label)
        verdict = "-" if target is None else f"≤{target:g} s: {_verdict(wall, cpu, target)}"
        table.add(
            f"`{label}`", fmt_s(wall), fmt_s(cpu), ratio(wall, base) if base else "-", verdict
        )

    help_mods = heavy_loaded(
        "sys.argv = ['aletheia', '--help']\nfrom aletheia.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass",
        env,
    )
    import_mods = heavy_loaded("from aletheia import Metastore", env)
    section.counts.update(
        help_heavy_modules=help_mods, import_heavy_modules=import_mods, runs_seeded=count
    )
    section.note(
        f"heavy modules loaded by `aletheia --help`: {help_mods or 'none'}; "
        f"by `from aletheia import Metastore`: {import_mods or 'none'}"
    )
    section.note(
        f"`runs list` reads an experiment of {count:,} seeded runs; its time includes the "
        "Firestore query and printing the table"
    )
    section.note(
        "the ratio column divides by aletheia's own figure for the same job: `aletheia --help` "
        "for the CLIs, `import aletheia` for the imports"
    )
    return section


def _verdict(wall: float, cpu: float, target: float) -> str:
    """Met, or met in CPU time only: on a loaded machine the wall time is mostly waiting."""
    if wall <= target:
        return "met"
    return "met in CPU time, not in wall time (load)" if cpu <= target else "not met"


def _baseline(label: str, measured: dict[str, tuple[float, float]]) -> float | None:
    """aletheia's figure for the same kind of job: the CLI's help, or the import."""
    if label.startswith(("import ", "from ")):
        return measured.get("import aletheia", (0.0, 0.0))[0] or None
    if label.endswith("--help") or label.startswith("python"):
        return measured.get("aletheia --help", (0.0, 0.0))[0] or None
    return None
