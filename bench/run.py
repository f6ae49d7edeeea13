"""Run the benchmarks: ``python -m bench.run [--quick] [--only NAME ...]``.

Starts its own local stack (free ports, ``.bench-stack``) unless the
environment already points at one (``FIRESTORE_EMULATOR_HOST``), runs each
benchmark, prints its tables and appends them all to ``bench/RESULTS.md``
(quick runs write only where ``--results`` says). ``--json`` writes every
benchmark's counts and notes for scripts and the smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import (
    bench_dashboard,
    bench_datasets,
    bench_ingest,
    bench_logging,
    bench_merge,
    bench_query,
    bench_spark,
    bench_startup,
    bench_stats,
)
from bench.common import REPO, RESULTS, Context, Section, append_results, console, header

BENCHMARKS: dict[str, Callable[[Context], Section]] = {
    "logging": bench_logging.run,
    "ingest": bench_ingest.run,
    "datasets": bench_datasets.run,
    "stats": bench_stats.run,
    "merge": bench_merge.run,
    "spark": bench_spark.run,
    "query": bench_query.run,
    "startup": bench_startup.run,
    "dashboard": bench_dashboard.run,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke test)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--results", type=Path, help="Markdown file to append to")
    parser.add_argument("--json", type=Path, help="write counts and notes as JSON here")
    parser.add_argument("--work-dir", type=Path, help="scratch dir for generated data")
    parser.add_argument("--stack-dir", type=Path, default=REPO / ".bench-stack")
    return parser.parse_args(argv)


@contextlib.contextmanager
def local_stack(stack_dir: Path) -> Iterator[dict[str, str]]:
    """The environment of a running stack: the caller's if it has one, else one started here."""
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        console.print("using the local stack named by the environment")
        yield {}
        return
    from aletheia.devstack import local

    ports = local.free_ports()
    local.down(stack_dir, keep_data=False, echo=lambda _m: None)
    # With the Auth emulator: the dashboard benchmark signs a user in.
    config = local.StackConfig(stack_dir=stack_dir, ports=ports, auth=True)
    state = local.up(config, echo=console.print)
    try:
        yield {**state.env, "ALETHEIA_STACK_DIR": str(stack_dir)}
    finally:
        local.down(stack_dir, keep_data=False, echo=console.print)


def warm_up() -> None:
    """One write and read first: a fresh emulator's first write takes seconds, once."""
    from aletheia.cloud import clients, config

    db = clients.firestore_client(config.resolve())
    ref = db.collection("BenchWarmUp").document("w")
    ref.set({"ok": True})
    ref.get()
    ref.delete()


def run_one(name: str, ctx: Context) -> Section:
    """Run one benchmark; a crash becomes a section that says so (the others still run)."""
    console.rule(f"[bold]{name}")
    t0 = time.perf_counter()
    try:
        section = BENCHMARKS[name](ctx)
    except Exception as exc:
        section = Section(name, f"{name}: FAILED")
        section.note(f"failed: {type(exc).__name__}: {exc}")
        section.counts["failed"] = True
        traceback.print_exc()
    for table in section.tables:
        table.show()
    section.counts["elapsed_s"] = round(time.perf_counter() - t0, 1)
    console.print(f"[dim]{name} took {section.counts['elapsed_s']} s (data generation included)[/]")
    return section


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit code 1 when a benchmark failed."""
    args = parse_args(argv)
    names = args.only or list(BENCHMARKS)
    command = "python -m bench.run " + shlex.join(argv if argv is not None else sys.argv[1:])
    head = header(command, args.quick)
    console.print(head)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="aletheia-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sections = []
    try:
        with local_stack(args.stack_dir) as stack_env:
            env = {
                **stack_env,
                "ALETHEIA_CACHE_DIR": str(work / "cache"),
                "ALETHEIA_CONFIG": str(work / "no-config.toml"),
                "ALETHEIA_GIT_POLICY": "off",
            }
            os.environ.update(env)  # in-process clients resolve the same settings
            warm_up()
            # A fresh aletheia project per run: a reused stack never holds its data already.
            ctx = Context(
                quick=args.quick, work=work, env=env, project=f"bench-{uuid.uuid4().hex[:8]}"
            )
            sections = [run_one(name, ctx) for name in names]
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    results = args.results or (None if args.quick else RESULTS)
    if results:
        append_results(results, head, sections)
        console.print(f"appended to {results}")
    if args.json:
        data = {s.name: {"counts": s.counts, "notes": s.notes} for s in sections}
        args.json.write_text(json.dumps(data, indent=2, default=str))
    return 1 if any(s.counts.get("failed") for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
