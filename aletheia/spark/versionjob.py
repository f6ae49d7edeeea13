"""Profile a dataset version's files with Spark: the files too big for the storage function.

The function records a file over its size limit as ``deferred``
(:mod:`aletheia.function.filestatus`); this job takes such files (and files
never profiled) of one version, profiles each with Spark
(:func:`aletheia.spark.profiler.profile`, the function's sketches merged
across partitions) and writes the result exactly where the function would:
the same ``Files/{sha256}`` fields, profile and sample blobs
(:func:`aletheia.function.analysis.result_fields`), status ``done``, then the
version's validation. Every reader (``datasets stats``, the web app) sees it
like any profile.

Each file is leased as the function leases it, by the same code
(:mod:`aletheia.function.filelease`: ``processing`` with a worker id, taken in
a transaction, never reviving a deleted project), for longer: a Spark job over
tens of GB outlives a function's timeout, and a sweep must not take it over
meanwhile.

Where the data is read: in local mode (``local[*]``) each blob is downloaded
through aletheia's storage client into a temporary directory (no GCS
connector needed; the download is checked against the blob's sha256); on a
cluster (Dataproc Serverless, which ships the GCS connector) Spark reads
``gs://`` directly. The same module runs in both: ``aletheia datasets stats
NAME --engine spark`` locally, ``python -m aletheia.spark.versionjob NAME``
as the Dataproc batch's main file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc

from aletheia.cloud import layout
from aletheia.errors import AccessDeniedError, AletheiaError, IntegrityError
from aletheia.function import analysis, fileevents, filelease, filestatus
from aletheia.spark import profiler, sources
from aletheia.spark.session import session as spark_session
from aletheia.stats import readers
from aletheia.stats.formats import Detected, ProfileError, UnsupportedFormatError, detect_format
from aletheia.stats.profiling import Profile

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from aletheia.data.datasets import DatasetStore

#: How long a Spark worker's lease lasts (a sweep takes over only after it).
LEASE_SECONDS = int(os.environ.get("ALETHEIA_SPARK_LEASE_SECONDS", str(24 * 3600)))
#: The statuses this job profiles without ``force``: deferred, or never profiled.
WANTED = frozenset({filestatus.STATUS_DEFERRED, filestatus.STATUS_SEEN, None})


class SparkProfileDeniedError(AccessDeniedError):
    """These credentials may not write the Files registry."""


@dataclass(frozen=True)
class SparkResult:
    """What the job did to one file."""

    path: str
    sha256: str
    status: str | None
    reason: str | None = None
    rows: int | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for ``--json``."""
        return dict(self.__dict__)


def profile_version(
    store: DatasetStore,
    name: str,
    version: str | None = None,
    *,
    master: str | None = None,
    force: bool = False,
    on_file: Callable[[SparkResult], None] | None = None,
) -> list[SparkResult]:
    """Profile the version's deferred (and never profiled) files with Spark; ``force``: all.

    Files a live worker holds, and finished ones (unless ``force``), are
    left alone and reported with their status.
    """
    resolved = store.resolve_version(name, version)
    manifest = store.manifest(name, resolved)
    records = store.file_records(manifest.values())
    spark: SparkSession | None = None
    results = []
    for path, entry in sorted(manifest.items()):
        record = records.get(entry.sha256) or {}
        status = record.get("status")
        if filelease.held(record):
            result = SparkResult(path, entry.sha256, status, "a worker holds it")
        elif not force and status not in WANTED and status != filestatus.STATUS_PROCESSING:
            result = SparkResult(path, entry.sha256, status, "already profiled")
        else:
            spark = spark or spark_session(master, app_name=f"aletheia profile {name}")
            result = profile_file(store, spark, path, entry.sha256, entry.size)
        results.append(result)
        if on_file is not None:
            on_file(result)
    return results


def profile_file(
    store: DatasetStore, spark: SparkSession, path: str, sha256: str, size: int
) -> SparkResult:
    """Lease, profile with Spark and record one file, as the function would have."""
    db, gcs, bucket = store.db, store.blobs.client, store.blobs.bucket
    ref = layout.BlobRef(store.project, sha256)
    doc = db.document(layout.file(store.project, sha256))
    worker = f"spark-{uuid.uuid4().hex}"
    blob_name = layout.blob_name(store.project, sha256)
    fields = {
        "blob": f"gs://{bucket.name}/{blob_name}",
        "size": int(size),
        "path": path,
    }
    project_doc = db.document(layout.project(store.project))
    try:
        # Whatever status the file has: profile_version chose it (deferred, or forced).
        claim = filelease.claim(
            db, doc, project_doc, worker, seconds=LEASE_SECONDS, defaults=fields, take_terminal=True
        )
    except gexc.PermissionDenied as exc:
        raise SparkProfileDeniedError(
            "recording a profile writes the Files registry, which only server credentials "
            "may write",
            "run it with the storage function's service account (or ADC), or as the "
            "Dataproc batch (README: Deploy)",
        ) from exc
    if claim.outcome == filelease.BUSY:
        return SparkResult(path, sha256, filestatus.STATUS_PROCESSING, "a worker holds it")
    if claim.outcome == filelease.GONE:
        return SparkResult(path, sha256, None, f"project {store.project!r} was deleted")
    started = time.monotonic()
    try:
        result = _profile(store, spark, path, sha256, ref)
    except (UnsupportedFormatError, ProfileError, IntegrityError) as exc:
        status = (
            filestatus.STATUS_UNSUPPORTED
            if isinstance(exc, UnsupportedFormatError)
            else filestatus.STATUS_FAILED
        )
        result = {"status": status, "reason": str(exc)}
    except Exception:
        # Give the lease back as it was found; the error is the caller's to see.
        prior = claim.prior
        back = prior if prior == filestatus.STATUS_DEFERRED else filestatus.STATUS_SEEN
        filelease.give_back(doc, back, worker=None)
        raise
    seconds = time.monotonic() - started
    result.setdefault("timings", {})
    result["timings"] = {**result["timings"], "total_s": round(seconds, 3), "engine": "spark"}
    if not filelease.finish(db, doc, worker, {**result, "engine": "spark", "hint": None}):
        raise AletheiaError(
            f"another worker took {sha256[:12]}… over while Spark profiled it; its result was kept",
            "see `aletheia datasets stats` for the file's status",
        )
    # Whatever the outcome, as the function does: it may complete a version.
    fileevents.validate_datasets(db, gcs, bucket.name, ref)
    return SparkResult(
        path, sha256, str(result["status"]), result.get("reason"), result.get("rows"), seconds
    )


def _profile(
    store: DatasetStore, spark: SparkSession, path: str, sha256: str, ref: layout.BlobRef
) -> dict[str, Any]:
    """The Files fields of one blob profiled with Spark (profile and sample blobs written)."""
    bucket = store.blobs.bucket
    blob = bucket.blob(layout.blob_name(store.project, sha256))
    try:
        head = blob.download_as_bytes(start=0, end=7, checksum=None)
    except gexc.NotFound:
        return {"status": filestatus.STATUS_FAILED, "reason": "the object is missing"}
    detected = detect_format(path, None, head)
    local = str(spark.sparkContext.master or "local").startswith("local")
    with tempfile.TemporaryDirectory(prefix="aletheia-spark-") as tmp:
        if local:
            copy = _download(store, sha256, Path(tmp), path, detected)
            source = sources.prepare(copy, detected, Path(tmp) / "read")
        else:
            if detected.gzip:
                raise ProfileError(
                    "Spark reads a gzip'd object by its name's .gz, which content-addressed "
                    "blobs lack",
                    "run the job in local mode (--master local[*]) for this file",
                )
            first, complete = readers.head(lambda: blob.open("rb"), detected)
            source = sources.prepare_remote(
                f"gs://{bucket.name}/{blob.name}", first, complete, detected
            )
        df = sources.read(spark, source)
        result = profiler.profile(df, format=detected.format)
    merged = result.profile
    prof = Profile(
        format=detected.format,
        gzip=detected.gzip,
        rows=int(merged.get("rows") or 0),
        columns_total=int(merged.get("columns_total") or 0),
        columns=list(merged.get("stats") or []),
        warnings=[*source.warnings, *(merged.get("warnings") or [])],
        sample=result.sample,
        notes=[
            *source.notes,
            *(merged.get("notes") or []),
            f"profiled with Spark, {result.partitions} part(s)",
        ],
        sketches=list(merged.get("sketches") or []),
    )
    return analysis.result_fields(prof, ref, bucket)


def _download(store: DatasetStore, sha256: str, into: Path, path: str, detected: Detected) -> Path:
    """The blob as a local file named so Spark reads its format (and gzip), verified."""
    suffix = "".join(PurePosixPath(path).suffixes[-2:]) or f".{detected.format}"
    if detected.gzip and not suffix.endswith(".gz"):
        suffix += ".gz"
    target = into / f"data{suffix}"
    digest = hashlib.sha256()
    with target.open("wb") as fh:
        store.blobs.download_to(sha256, fh, on_bytes=None)
    with target.open("rb") as fh:
        for chunk in iter(lambda: fh.read(4 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise IntegrityError(
            f"the stored bytes of {path} do not match their sha256", "re-add the file"
        )
    return target


def main(argv: list[str] | None = None) -> None:
    """``python -m aletheia.spark.versionjob NAME [--version V] [--project P] [--force]``.

    The Dataproc Serverless batch's entry point (and spark-submit's): the
    SparkSession is the batch's; the settings are resolved as everywhere
    (``ALETHEIA_*``, the config file), and ``--cloud-project``/``--bucket``
    name the deployment on the command line, where a batch's arguments go.
    """
    import argparse
    import json
    import sys

    from aletheia.cloud import config
    from aletheia.tracking.compose import Backend

    parser = argparse.ArgumentParser(description="Profile a dataset version's files with Spark.")
    parser.add_argument("name")
    parser.add_argument("--version")
    parser.add_argument("--project")
    parser.add_argument("--master", help="when not run by spark-submit (default local[*])")
    parser.add_argument("--force", action="store_true", help="also files already profiled")
    parser.add_argument("--cloud-project", help="the Google Cloud project (ALETHEIA_CLOUD_PROJECT)")
    parser.add_argument("--bucket", help="the data bucket (ALETHEIA_BUCKET)")
    args = parser.parse_args(argv)
    overrides = {"cloud_project": args.cloud_project, "bucket": args.bucket}
    if args.cloud_project:
        overrides["mode"] = "cloud"
    store = Backend(config.resolve(overrides), args.project).datasets()

    def report(result: SparkResult) -> None:
        print(json.dumps(result.to_dict()), file=sys.stderr, flush=True)

    results = profile_version(
        store, args.name, args.version, master=args.master, force=args.force, on_file=report
    )
    failed = [r for r in results if r.status == filestatus.STATUS_FAILED]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
