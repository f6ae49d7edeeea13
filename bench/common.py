"""What every benchmark shares: sizes, machine facts, tool versions, timing, tables, results.

A benchmark is a function ``run(ctx) -> Section``. A :class:`Section` holds
tables (printed with rich, appended to ``bench/RESULTS.md`` as Markdown),
free-text notes, and ``counts``: the numbers that do not depend on the
machine's speed (documents, bytes, write RPCs). The quick-mode smoke test
asserts on those counts, never on times.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

console = Console(highlight=False, width=120)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
#: Distributions whose versions RESULTS.md records (the tools compared and what they stand on).
TRACKED = (
    "aletheia",
    "google-cloud-firestore",
    "google-cloud-storage",
    "mlflow-skinny",
    "mlflow",
    "sqlalchemy",
    "dvc",
    "pandas",
    "duckdb",
    "pyarrow",
    "numpy",
)
PEER_MISSING = "peer not installed"


@dataclass
class Table:
    """A titled table of already formatted cells."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        """Append a row; every cell is shown with ``str``."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        """The table as GitHub Markdown."""
        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)

    def show(self) -> None:
        """Print the table to the terminal."""
        table = RichTable(*self.columns, title=self.title, title_justify="left")
        for row in self.rows:
            table.add_row(*row)
        console.print(table)


@dataclass
class Section:
    """The result of one benchmark."""

    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        """Add a line of explanation (printed at once, kept for RESULTS.md)."""
        console.print(f"  [dim]{self.name}:[/] {text}")
        self.notes.append(text)

    def markdown(self) -> str:
        """The section as Markdown for RESULTS.md."""
        parts = [f"### {self.title}", ""]
        for table in self.tables:
            parts += [table.markdown(), ""]
        parts += [f"- {n}" for n in self.notes]
        return "\n".join(parts).rstrip() + "\n"


@dataclass
class Context:
    """What a benchmark needs: the size mode, a scratch dir, and aletheia's settings."""

    quick: bool
    work: Path
    env: dict[str, str]
    project: str = "bench"

    def sized(self, full: int, quick: int) -> int:
        """``full`` normally, ``quick`` in quick mode."""
        return quick if self.quick else full

    def subprocess_env(self) -> dict[str, str]:
        """The environment a child process (CLI, profiler) runs with."""
        return {**os.environ, **self.env, "ALETHEIA_PROJECT": self.project}


# --------------------------------------------------------------------------- availability


def module_available(name: str) -> bool:
    """True when ``name`` imports (a peer, or an aletheia module not written yet)."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def version_of(dist: str) -> str:
    """Installed version of a distribution, or ``not installed``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def tool_version(cmd: Sequence[str]) -> str:
    """First line of ``cmd --version`` for a command-line tool."""
    if shutil.which(cmd[0]) is None:
        return "not installed"
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    return (out.splitlines() or ["?"])[0].strip()


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, str]:
    """CPU count, RAM, CPU model, OS and Python of this machine."""
    mem_kb = 0
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": str(os.cpu_count()),
        "ram": f"{mem_kb / 1024**2:.1f} GiB",
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    """Versions of every tool compared."""
    found = {d: version_of(d) for d in TRACKED}
    found["sha256sum"] = tool_version(["sha256sum", "--version"])
    return found


# --------------------------------------------------------------------------- measuring


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


@contextlib.contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["s"]`` holds the elapsed seconds."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - t0


@dataclass
class Measured:
    """A child process's wall time and output."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str


def run_measured(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run ``cmd`` to completion and time it.

    Peak memory is not taken from ``wait4``: Linux carries the parent's
    high-water mark into a forked child's ``ru_maxrss``, so a child would
    report at least this (large) process's RSS. Children that need a peak
    report their own ``VmHWM`` (see :data:`PEAK_RSS_FOOTER`).
    """
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{os.getpid()}-{time.time_ns()}"
    with (
        out_path.with_suffix(".out").open("w+") as out,
        out_path.with_suffix(".err").open("w+") as err,
    ):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status = os.waitpid(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Measured(seconds, proc.returncode, out.read(), err.read())
    for suffix in (".out", ".err"):
        out_path.with_suffix(suffix).unlink(missing_ok=True)
    return result


#: Appended to a Python child's script: prints its peak RSS (bytes) as the last line.
PEAK_RSS_FOOTER = """
import re as _re
_hwm = _re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())
print("PEAK_RSS", int(_hwm.group(1)) * 1024)
"""


def peak_rss(measured: Measured) -> int:
    """The peak RSS a child printed with :data:`PEAK_RSS_FOOTER`."""
    for line in reversed(measured.stdout.splitlines()):
        if line.startswith("PEAK_RSS "):
            return int(line.split()[1])
    raise RuntimeError("the child did not report its peak RSS")


def check(measured: Measured, what: str) -> Measured:
    """Raise with the child's stderr when it failed: a failed tool has no time to report."""
    if measured.returncode != 0:
        raise RuntimeError(f"{what} failed ({measured.returncode}):\n{measured.stderr[-2000:]}")
    return measured


def drop_page_cache() -> bool:
    """Flush and drop the OS page cache (root on Linux); False when not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def cold(label: str) -> Callable[[], str]:
    """A function that drops the page cache and says whether the next read is cold or warm."""

    def prepare() -> str:
        return f"{label} (cold)" if drop_page_cache() else f"{label} (warm cache)"

    return prepare


# --------------------------------------------------------------------------- formatting


def fmt_s(seconds: float) -> str:
    """Seconds with sensible precision."""
    if seconds != seconds:  # NaN
        return "-"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def fmt_us(seconds: float) -> str:
    """A per-call time in microseconds."""
    return "-" if seconds != seconds else f"{seconds * 1e6:.1f} µs"


def fmt_bytes(n: float) -> str:
    """Bytes in binary units."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def ratio(a: float, b: float) -> str:
    """``a / b`` as ``N.Nx`` (or ``-`` when undefined)."""
    if not b or a != a or b != b:
        return "-"
    return f"{a / b:.2f}x" if a / b < 10 else f"{a / b:.0f}x"


# --------------------------------------------------------------------------- results


def header(command: str, quick: bool) -> str:
    """The Markdown heading of one run: date, machine, versions and the exact command."""
    mach = machine()
    vers = versions()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {stamp}{' (quick mode)' if quick else ''}",
        "",
        f"- command: `{command}`",
        f"- machine: {mach['cpus']} CPUs ({mach['cpu']}), {mach['ram']} RAM, {mach['os']}",
        f"- python: {mach['python']} ({sys.executable})",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        "",
    ]
    return "\n".join(lines)


def append_results(path: Path, head: str, sections: Sequence[Section]) -> None:
    """Append one run (its header and every section) to the results file."""
    body = head + "\n" + "\n".join(s.markdown() for s in sections) + "\n"
    if not path.exists():
        path.write_text("# Benchmark results\n\nNewest run last. See bench/README.md.\n\n")
    with path.open("a", encoding="utf-8") as fh:
        fh.write(body)
