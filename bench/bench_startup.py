"""Benchmark 6: start-up of the command line and of the training-side import, beside DVC and MLflow.

Every command runs as a fresh process, ``RUNS`` times after one warm-up
run (in quick mode, a smoke test, the warm-up run is the only one: it
proves the command runs, and its time is no figure to compare); the table
gives the median wall time, the median CPU time (user +
system, from the children's rusage: less sensitive than wall time to other
load on a shared machine) and the CPU time as a multiple of aletheia's for
the same job. The
floor is the interpreter itself (``python -c pass``, with this
environment's ``.pth`` hooks). ``aletheia runs list -e E -n 20`` runs on a
seeded experiment, so its time includes the Firestore queries and printing
the table: once on aletheia's own runs (numbered) and once on runs without a
number (as the MLflow plugin logs them). Beside it: ``mlflow runs list`` on
an experiment of as many runs as aletheia prints (MLflow's CLI has no
limit), ``dvc exp show`` in a fresh repository (DVC's listing, with no
experiments: its start-up), and the import of the Firestore client library
alone (the floor of any command that reads Firestore through it).

Counted, not timed (what the smoke test asserts): the heavy modules each
aletheia start-up left loaded (gRPC, the Firestore and Storage clients,
pyarrow, MLflow …): none for ``--help`` and ``import aletheia``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import PEER_MISSING, Context, Section, Table, fmt_s, median, ratio

EXPER = "bench-startup"
#: The same runs without numbers (explicit ids, as the MLflow plugin writes them).
EXPER_UNNUMBERED = "bench-startup-unnumbered"
#: Rows ``runs list -n`` prints; MLflow's experiment holds as many runs.
LISTED = 20
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
RUNS_LIST = f"aletheia runs list -e E -n {LISTED}"
RUNS_LIST_UNNUMBERED = f"{RUNS_LIST} (runs without numbers)"
#: The floor of any command that reads Firestore through the client library.
FIRESTORE_IMPORT = [sys.executable, "-c", "import google.cloud.firestore"]
TARGETS = {
    "aletheia --help": 0.2,
    "import aletheia": 0.3,
    RUNS_LIST: 0.6,
    RUNS_LIST_UNNUMBERED: 0.6,
}


def _bin(name: str) -> str | None:
    """A console script of this interpreter's environment, or None when not installed."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else None


def measure(
    cmd: Sequence[str], env: dict[str, str], runs: int, cwd: Path | None = None
) -> tuple[float, float]:
    """Median wall and CPU seconds of ``runs`` fresh runs of ``cmd`` after one warm-up run
    that must succeed; with ``runs`` 0 (quick mode), the warm-up run's own."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    check_run = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    warm_up = time.perf_counter() - t0, _cpu_since(before)
    if check_run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{check_run.stderr[-2000:]}")
    if runs == 0:
        return warm_up
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu_since(before))
    return median(walls), median(cpus)


def _cpu_since(before: resource.struct_rusage) -> float:
    """CPU seconds (user + system) of the children that ended since ``before``."""
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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


def loaded_count(code: str, env: dict[str, str]) -> int:
    """How many modules a fresh interpreter running ``code`` left loaded."""
    probe = f"import atexit, sys\natexit.register(lambda: print(len(sys.modules)))\n{code}\n"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"start-up probe failed:\n{done.stderr[-2000:]}")
    return int(done.stdout.strip().splitlines()[-1])


def seed_runs(ctx: Context, count: int) -> None:
    """``count`` finished runs in :data:`EXPER` (numbered, as aletheia starts them) and in
    :data:`EXPER_UNNUMBERED` (named, as the MLflow plugin logs them), for ``runs list``."""
    from aletheia.cloud import clients, config, layout

    db = clients.firestore_client(config.resolve())
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for exper, numbered in ((EXPER, True), (EXPER_UNNUMBERED, False)):
        db.document(layout.experiment(ctx.project, exper)).set(
            {
                "name": exper,
                "next_run_id": count + 1,
                "created_at": dt.datetime.now(dt.timezone.utc),
            }
        )
        batch = db.batch()
        for n in range(1, count + 1):
            run_id = str(n) if numbered else f"r{n:06d}"
            doc: dict[str, object] = {
                "project": ctx.project,
                "experiment": exper,
                "run": run_id,
                "status": "finished",
                "started_at": t0 + dt.timedelta(minutes=n),
                "ended_at": t0 + dt.timedelta(minutes=n + 1),
                "params": {"seed": n},
                "summary": {"loss": {"last": 1.0 / n, "min": 1.0 / n, "max": 1.0, "count": 1}},
            }
            if numbered:
                doc["number"] = n
            batch.set(db.document(layout.run(ctx.project, exper, run_id)), doc)
            if n % 500 == 0:
                batch.commit()
                batch = db.batch()
        if count % 500:
            batch.commit()


def seed_mlflow(work: Path, count: int) -> tuple[dict[str, str], str, str] | None:
    """An MLflow store under ``work`` with one experiment of ``count`` finished runs (param,
    metric): its environment, the experiment id and the store's name; None without MLflow.

    SQLite, MLflow's recommended backend, when its database extras are installed (the full
    ``mlflow``); else the file store, which MLflow 3 serves only when asked to.
    """
    stores = [
        ("SQLite", {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}),
        (
            "file",
            {"MLFLOW_TRACKING_URI": (work / "mlruns").as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true"},
        ),
    ]
    code = (
        "from mlflow.tracking import MlflowClient\n"
        "c = MlflowClient()\n"
        "e = c.create_experiment('bench-startup')\n"
        f"for n in range(1, {count} + 1):\n"
        "    r = c.create_run(e).info.run_id\n"
        "    c.log_param(r, 'seed', n)\n    c.log_metric(r, 'loss', 1.0 / n)\n"
        "    c.set_terminated(r)\n"
        "print(e)\n"
    )
    for name, env in stores:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return env, done.stdout.strip().splitlines()[-1], name
    return None


def dvc_repo(work: Path) -> Path | None:
    """A fresh git repository with ``dvc init`` and one commit, or None without DVC."""
    dvc = _bin("dvc")
    if dvc is None:
        return None
    repo = work / "dvc-repo"
    repo.mkdir(parents=True, exist_ok=True)
    steps = [
        ["git", "init", "-q"],
        [dvc, "init", "-q"],
        [
            "git",
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
            "commit",
            "-qm",
            "init",
        ],
    ]
    for step in steps:
        if subprocess.run(step, cwd=repo, capture_output=True, check=False).returncode != 0:
            return None
    return repo


def run(ctx: Context) -> Section:
    """Time each start-up, aletheia's and its peers', and count what aletheia's load."""
    section = Section(
        "startup", "6. Start-up: the CLI and `import aletheia`, beside DVC and MLflow"
    )
    runs = ctx.sized(15, 0)  # after one warm-up run each; quick mode: the warm-up run alone
    count = ctx.sized(1_000, 30)
    env = ctx.subprocess_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package runs from its bytecode cache
    seed_runs(ctx, count)
    py = sys.executable
    aletheia = _bin("aletheia") or "aletheia"
    mlflow = _bin("mlflow")
    seeded = seed_mlflow(ctx.work, LISTED) if mlflow else None
    repo = dvc_repo(ctx.work)
    dvc = _bin("dvc")
    listing = [aletheia, "runs", "list", "-n", str(LISTED), "-e"]
    commands: list[tuple[str, list[str] | None]] = [
        ("python -c pass (interpreter floor)", [py, "-c", "pass"]),
        ("aletheia --help", [aletheia, "--help"]),
        ("dvc --help", [dvc, "--help"] if dvc else None),
        ("mlflow --help", [mlflow, "--help"] if mlflow else None),
        ("git --help", ["git", "--help"]),
        ("import aletheia", [py, "-c", "import aletheia"]),
        ("from aletheia import Metastore", [py, "-c", "from aletheia import Metastore"]),
        ("import mlflow", [py, "-c", "import mlflow"]),
        ("import dvc.api", [py, "-c", "import dvc.api"]),
        (RUNS_LIST, [*listing, EXPER]),
        (RUNS_LIST_UNNUMBERED, [*listing, EXPER_UNNUMBERED]),
        (
            f"mlflow runs list ({seeded[2] if seeded else 'its'} store, {LISTED} runs)",
            [mlflow, "runs", "list", "--experiment-id", seeded[1]] if mlflow and seeded else None,
        ),
        (
            "dvc exp show (fresh repository)",
            [dvc, "exp", "show", "--no-pager"] if dvc and repo else None,
        ),
        ("import google.cloud.firestore (client library alone)", FIRESTORE_IMPORT),
    ]
    if seeded:
        env.update(seeded[0])
    measured: dict[str, tuple[float, float]] = {}
    table = Table(
        f"median of {runs} fresh processes each" if runs else "one fresh process each (quick)",
        ["command", "wall", "CPU (user+sys)", "CPU / aletheia's", "target"],
    )
    section.tables.append(table)
    missing: dict[str, str] = {}
    for label, cmd in commands:
        if cmd is None:
            missing[label] = PEER_MISSING
            continue
        try:
            measured[label] = measure(
                cmd, env, runs, cwd=repo if label.startswith("dvc exp") else None
            )
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
        base = _baseline(label, measured)  # CPU: wall time is mostly waiting on a loaded machine
        target = TARGETS.get(label)
        verdict = "-" if target is None else f"≤{target:g} s: {_verdict(wall, cpu, target)}"
        table.add(f"`{label}`", fmt_s(wall), fmt_s(cpu), ratio(cpu, base) if base else "-", verdict)

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
    runs_mods = loaded_count(
        f"sys.argv = [{', '.join(map(repr, ['aletheia', *listing[1:], EXPER]))}]\n"
        "from aletheia.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass",
        env,
    )
    section.counts["runs_list_modules"] = runs_mods
    section.note(
        f"`runs list` reads an experiment of {count:,} seeded runs (its top {LISTED}); its "
        f"time includes the Firestore queries and printing the table; it loads {runs_mods} "
        "modules"
    )
    section.note(
        "the ratio column divides CPU time by aletheia's own for the same job: `aletheia --help` "
        f"for the CLIs' help, `import aletheia` for the imports, `{RUNS_LIST}` for listing "
        "runs and for the Firestore client's import"
    )
    return section


def _verdict(wall: float, cpu: float, target: float) -> str:
    """Met, or met in CPU time only: on a loaded machine the wall time is mostly waiting."""
    if wall <= target:
        return "met"
    return "met in CPU time, not in wall time (load)" if cpu <= target else "not met"


def _baseline(label: str, measured: dict[str, tuple[float, float]]) -> float | None:
    """aletheia's CPU time for the same kind of job: the CLI's help, the import, listing runs."""
    if "runs list" in label or label.startswith(("dvc exp", "import google.cloud.firestore")):
        return measured.get(RUNS_LIST, (0.0, 0.0))[1] or None
    if label.startswith(("import ", "from ")):
        return measured.get("import aletheia", (0.0, 0.0))[1] or None
    if label.endswith("--help") or label.startswith("python"):
        return measured.get("aletheia --help", (0.0, 0.0))[1] or None
    return None
