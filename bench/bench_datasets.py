"""Benchmark 3: registering ~1 GB as a dataset, cold and then unchanged.

Two shapes of the same gigabyte: 10 x 100 MB and 10,000 x 100 KB. Each tool
reads exactly the same files, the page cache dropped before every cold step:

* ``sha256sum`` over every file (coreutils; no SHA CPU instructions here),
* Python ``hashlib.sha256`` streaming 1 MiB chunks, one thread (the floor:
  nothing that hashes every byte in Python can beat it),
* ``aletheia datasets add`` (cold CLI process: hash, upload to the local
  bucket, write the manifest), then the same command on unchanged files;
  its ``--json`` result names where the time went (scan, hash, HEAD,
  upload, documents), recorded as a second table,
* ``dvc add``, then ``dvc push`` to a local directory and ``dvc push`` to
  the *same* local bucket (``dvc-gs``: gcsfs honours ``STORAGE_EMULATOR_HOST``),
  so both tools move the same bytes to the same server; then ``dvc add`` again,
* the storage floor: the same files PUT to the local bucket by plain HTTP
  on 8 threads, nothing hashed or recorded. No add that stores every byte
  in that bucket can be faster, so "aletheia add / floor" is the overhead
  aletheia itself adds on this stack.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench import stackcpu
from bench.common import (
    PEER_MISSING,
    Context,
    Measured,
    Section,
    Table,
    check,
    drop_page_cache,
    fmt_bytes,
    fmt_s,
    ratio,
    run_measured,
)

#: ``timed(tool, step, cmd, cwd=None, cold=True)``: run a step, record and return its time.
Timed = Callable[..., Measured]

HASHLIB_SCRIPT = """
import hashlib, os, sys
for root, _, names in os.walk(sys.argv[1]):
    for name in names:
        h = hashlib.sha256()
        with open(os.path.join(root, name), "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
"""

# Uploads under floor/ (outside the blob layout: the function ignores them), 8 at a time.
# ``media``: the bytes alone, the cheapest request. ``multipart``: the request the add
# sends (the object's metadata, then the bytes streamed from the file, in one request),
# which the add needs because the function reads that metadata when the object lands.
FLOOR_SCRIPT = """
import json, os, sys, uuid, requests
from concurrent.futures import ThreadPoolExecutor
url = os.environ["STORAGE_EMULATOR_HOST"].rstrip("/")
bucket = os.environ["ALETHEIA_BUCKET"]
kind = sys.argv[2] if len(sys.argv) > 2 else "media"
session = requests.Session()
session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))
paths = [os.path.join(r, n) for r, _, names in os.walk(sys.argv[1]) for n in names]
class Multipart:
    def __init__(self, name, path, fh):
        self.boundary = uuid.uuid4().hex
        meta = json.dumps({"name": name, "metadata": {"aletheia-path": path}}).encode()
        self.head = (f"--{self.boundary}\\r\\nContent-Type: application/json\\r\\n\\r\\n".encode()
                     + meta + f"\\r\\n--{self.boundary}\\r\\n"
                     "Content-Type: application/octet-stream\\r\\n\\r\\n".encode())
        self.tail = f"\\r\\n--{self.boundary}--\\r\\n".encode()
        self.fh, self.size, self.stage = fh, os.fstat(fh.fileno()).st_size, 0
    def __len__(self):
        return len(self.head) + self.size + len(self.tail)
    def read(self, n=-1):
        if self.stage == 0:
            self.stage = 1
            return self.head
        if self.stage == 1:
            data = self.fh.read(n if n and n > 0 else 1 << 20)
            if data:
                return data
            self.stage = 2
            return self.tail
        return b""
def put(path):
    name = f"floor/{kind}/{path}"
    with open(path, "rb") as fh:
        if kind == "media":
            resp = session.post(f"{url}/upload/storage/v1/b/{bucket}/o",
                                params={"uploadType": "media", "name": name}, data=fh)
        else:
            body = Multipart(name, path, fh)
            resp = session.post(
                f"{url}/upload/storage/v1/b/{bucket}/o", params={"uploadType": "multipart"},
                data=body, headers={"Content-Type": f"multipart/related; boundary={body.boundary}",
                                    "Content-Length": str(len(body))})
    resp.raise_for_status()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(put, paths))
"""


def make_files(root: Path, count: int, size: int) -> int:
    """Write ``count`` files of ``size`` random bytes; returns the total bytes."""
    root.mkdir(parents=True, exist_ok=True)
    width = len(str(count))
    for i in range(count):
        (root / f"part-{i:0{width}d}.bin").write_bytes(os.urandom(size))
    return count * size


def aletheia_cli() -> list[str]:
    """The ``aletheia`` console script of this interpreter's environment."""
    return [str(Path(sys.executable).parent / "aletheia")]


def aletheia_available() -> str | None:
    """None when ``aletheia datasets add`` exists, else why not."""
    probe = subprocess.run(
        [*aletheia_cli(), "datasets", "add", "--help"], capture_output=True, text=True, check=False
    )
    return (
        None if probe.returncode == 0 else "the `aletheia datasets add` command does not exist yet"
    )


def dvc_cmd() -> list[str] | None:
    """The ``dvc`` executable next to this interpreter, or None (peer not installed)."""
    found = Path(sys.executable).parent / "dvc"
    return [str(found)] if found.exists() else None


def run(ctx: Context) -> Section:
    """Both shapes, every tool."""
    section = Section("datasets", "3. Dataset add (~1 GB: 10 big files, 10,000 small files)")
    shapes = {"small": (ctx.sized(10_000, 100), ctx.sized(100 << 10, 4 << 10))}
    if not ctx.quick:  # at quick sizes both shapes exercise the same code: one is enough
        shapes = {"big": (10, 100 << 20), **shapes}
    section.note(
        "load average (1/5/15 min) at the start: {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    )
    cold = drop_page_cache()
    if not cold:
        section.note("page cache could not be dropped: every 'cold' figure is warm cache")
    missing = aletheia_available()
    if missing:
        section.note(f"aletheia side not available: {missing}")
    dvc = dvc_cmd()
    if dvc is None:
        section.note(f"dvc: {PEER_MISSING}")
    for shape, (count, size) in shapes.items():
        section.tables.append(_shape(ctx, section, shape, count, size, missing, dvc))
    section.note(
        "load average (1/5/15 min) at the end: {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    )
    return section


def _shape(
    ctx: Context,
    section: Section,
    shape: str,
    count: int,
    size: int,
    aletheia_missing: str | None,
    dvc: list[str] | None,
) -> Table:
    repo = ctx.work / f"datasets-{shape}"
    data = repo / "data"
    total = make_files(data, count, size)
    title = f"{shape}: {count:,} files x {fmt_bytes(size)} = {fmt_bytes(total)}"
    table = Table(title, ["tool", "step", "time", "MB/s", "vs sha256sum", "vs hashlib"])
    times: dict[str, float] = {}
    phase_tables: list[Table] = []
    cpu: dict[str, dict[str, float]] = {}
    settled: dict[str, float] = {}

    def timed(
        tool: str, step: str, cmd: list[str], cwd: Path | None = None, cold: bool = True
    ) -> Measured:
        # The function's work on the previous step's events is not this step's.
        settled[f"{tool} {step}"] = stackcpu.wait_quiet()
        if cold:
            drop_page_cache()
        before = stackcpu.snapshot()
        m = check(run_measured(cmd, env=ctx.subprocess_env(), cwd=cwd), f"{tool} {step}")
        cpu[f"{tool} {step}"] = stackcpu.since(before, stackcpu.snapshot())
        times[f"{tool} {step}"] = m.seconds
        return m

    sha = "find data -type f -print0 | xargs -0 sha256sum > /dev/null"
    rows: list[tuple[str, str, Measured]] = [
        ("sha256sum", "cold", timed("sha256sum", "cold", ["bash", "-c", sha], cwd=repo)),
        (
            "hashlib",
            "cold",
            timed("hashlib", "cold", [sys.executable, "-c", HASHLIB_SCRIPT, "data"], cwd=repo),
        ),
    ]
    if aletheia_missing is None:
        # --no-lock: the benchmark must not pin versions in whatever repo it runs from.
        add = [*aletheia_cli(), "datasets", "add", f"bench-{shape}", str(data), "--no-lock"]
        add += ["--json"]  # the result carries the per-phase seconds
        before = _bucket_usage(ctx)
        first = timed("aletheia", "add", add)
        rows.append(("aletheia datasets add", "cold", first))
        after_add = _bucket_usage(ctx)
        again = timed("aletheia", "re-add", add, None, cold=False)
        rows.append(("aletheia datasets add", "unchanged", again))
        after_readd = _bucket_usage(ctx)
        phase_tables.append(_phase_table(shape, {"cold": first, "unchanged": again}))
        section.counts[shape] = {
            "files": count,
            "bytes": total,
            "uploaded_objects": after_add[0] - before[0],
            "uploaded_bytes": after_add[1] - before[1],
            "readd_objects": after_readd[0] - after_add[0],
            "readd_bytes": after_readd[1] - after_add[1],
            "file_documents": _file_docs(ctx, f"bench-{shape}"),
        }
        floor = [sys.executable, "-c", FLOOR_SCRIPT, "data"]
        rows.append(("storage floor", "PUT only", timed("floor", "put", floor, cwd=repo)))
        multipart = [*floor, "multipart"]
        put_multipart = timed("floor", "put-multipart", multipart, cwd=repo)
        rows.append(("storage floor", "multipart PUT", put_multipart))
    if dvc is not None:
        rows += _dvc(repo, dvc, timed, f"gs://{ctx.env.get('ALETHEIA_BUCKET', 'aletheia-local')}")
    base_sha, base_hl = times["sha256sum cold"], times["hashlib cold"]
    for tool, step, m in rows:
        table.add(
            tool,
            step,
            fmt_s(m.seconds),
            f"{total / m.seconds / 1e6:,.0f}",
            ratio(m.seconds, base_sha),
            ratio(m.seconds, base_hl),
        )
    if aletheia_missing is not None:
        table.add("aletheia datasets add", "-", "not available", "-", "-", "-")
    if dvc is None:
        table.add("dvc add + push", "-", PEER_MISSING, "-", "-", "-")
    if not ctx.quick:
        _verdict(section, shape, times)
    section.tables += phase_tables
    section.tables.append(_cpu_table(shape, times, cpu, settled))
    shutil.rmtree(repo, ignore_errors=True)
    return table


def _dvc(repo: Path, dvc: list[str], timed: Timed, bucket: str) -> list[tuple[str, str, Measured]]:
    """``dvc add``, then a push to a local directory and one to the same bucket as aletheia."""
    remote = repo.parent / f"{repo.name}-remote"
    for args in (
        ["init", "--no-scm", "-q"],
        ["config", "core.analytics", "false"],
        ["remote", "add", "-d", "local", str(remote)],
        ["remote", "add", "gcs", f"{bucket}/dvc-bench/{repo.name}"],
    ):
        subprocess.run([*dvc, *args], cwd=repo, check=True, capture_output=True)
    rows = [
        ("dvc add", "cold", timed("dvc", "add", [*dvc, "add", "-q", "data"], cwd=repo)),
        (
            "dvc push",
            "local remote",
            timed("dvc", "push", [*dvc, "push", "-q"], cwd=repo, cold=False),
        ),
    ]
    if dvc_gs_available():
        push = [*dvc, "push", "-q", "-r", "gcs"]
        rows.append(("dvc push", "same bucket", timed("dvc", "push-gs", push, cwd=repo)))
    rows.append(
        (
            "dvc add",
            "unchanged",
            timed("dvc", "re-add", [*dvc, "add", "-q", "data"], cwd=repo, cold=False),
        )
    )
    return rows


def dvc_gs_available() -> bool:
    """True when DVC can push to ``gs://`` (the ``dvc-gs`` plugin is installed)."""
    try:
        import dvc_gs  # noqa: F401
    except ImportError:
        return False
    return True


#: ``AddResult.seconds`` keys, in the order an add goes through them.
PHASES = ("scan", "transfer", "hash", "head", "upload", "documents", "total")


def _cpu_table(
    shape: str,
    times: dict[str, float],
    cpu: dict[str, dict[str, float]],
    settled: dict[str, float],
) -> Table:
    """CPU seconds of the tool and of each stack process during each step (2 cores shared),
    and how long the stack took to go quiet before it (the previous step's leftover work)."""
    parts = ["tool", *stackcpu.PARTS]
    table = Table(
        f"{shape}: CPU seconds during each step (the tool, and each process of the local stack)",
        ["step", "waited for quiet", "wall", *parts],
    )
    for step, used in cpu.items():
        table.add(
            step,
            fmt_s(settled.get(step, 0.0)),
            fmt_s(times[step]),
            *(f"{used.get(p, 0.0):.1f}" for p in parts),
        )
    return table


def _phase_table(shape: str, steps: dict[str, Measured]) -> Table:
    """Where ``aletheia datasets add`` spent its time, from its ``--json`` result."""
    table = Table(
        f"{shape}: aletheia datasets add, per phase (hash/HEAD/upload: thread time)",
        ["step", "process", *PHASES],
    )
    for step, m in steps.items():
        seconds = json.loads(m.stdout).get("seconds", {})
        cells = [fmt_s(seconds[k]) if k in seconds else "-" for k in PHASES]
        table.add(step, fmt_s(m.seconds), *cells)
    return table


def _bucket_usage(ctx: Context) -> tuple[int, int]:
    """Objects and bytes under this project's blobs in the bucket."""
    from aletheia.cloud import clients, config, layout

    settings = config.resolve()
    objects = size = 0
    for blob in clients.storage_client(settings).bucket(settings.bucket).list_blobs():
        ref = layout.parse_blob_name(blob.name)
        if ref is not None and getattr(ref, "project", ctx.project) == ctx.project:
            objects += 1
            size += blob.size or 0
    return objects, size


def _file_docs(ctx: Context, name: str) -> int:
    from aletheia.cloud import clients, config, layout

    db = clients.firestore_client(config.resolve())
    return sum(1 for _ in db.collection(layout.dataset_files(ctx.project, name)).stream())


def _verdict(section: Section, shape: str, times: dict[str, float]) -> None:
    add, readd = times.get("aletheia add"), times.get("aletheia re-add")
    if add is None or readd is None:
        return
    vs_sha = add / times["sha256sum cold"]
    vs_hl = add / times["hashlib cold"]
    section.note(
        f"{shape}: aletheia add = {vs_sha:.2f}x sha256sum (target ≤1.3x: "
        f"{'met' if vs_sha <= 1.3 else 'NOT met'}), {vs_hl:.2f}x hashlib; "
        f"re-add = {readd / add:.2f}x first add (target ≤0.1x: "
        f"{'met' if readd / add <= 0.1 else 'NOT met'})"
    )
    if "floor put" in times:
        vs_floor = add / times["floor put"]
        section.note(
            f"{shape}: aletheia add = {vs_floor:.2f}x the storage floor "
            "(plain PUTs of the same bytes to the same local bucket; goal ≤1.1x: "
            f"{'met' if vs_floor <= 1.1 else 'NOT met'})"
        )
    if "floor put-multipart" in times:
        section.note(
            f"{shape}: aletheia add = {add / times['floor put-multipart']:.2f}x the multipart "
            "floor (the add's own request shape: metadata and bytes in one request)"
        )
    if "dvc add" in times:
        section.note(
            f"{shape}: aletheia add vs dvc add + push to a local directory: "
            f"{add / (times['dvc add'] + times['dvc push']):.2f}x"
        )
    if "dvc push-gs" in times:
        both = times["dvc add"] + times["dvc push-gs"]
        section.note(
            f"{shape}: aletheia add vs dvc add + push to the same bucket: {add / both:.2f}x "
            f"(goal: faster: {'met' if add < both else 'NOT met'})"
        )
    if "dvc re-add" in times:
        section.note(
            f"{shape}: unchanged re-add {readd:.2f} s vs dvc add unchanged "
            f"{times['dvc re-add']:.2f} s (goal ≤: "
            f"{'met' if readd <= times['dvc re-add'] else 'NOT met'})"
        )
