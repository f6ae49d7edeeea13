"""Profiling one stored object into the fields of its ``Files`` document.

Schema and statistics are kept on the document within a budget; the full
profile and a row sample go to blobs under ``{project}/samples/`` (which the
function ignores, so it never triggers itself).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aletheia.cloud import layout
from aletheia.data import blobstore
from aletheia.function.blobsource import BlobSource
from aletheia.function.filestatus import STATUS_DONE, STATUS_FAILED, STATUS_UNSUPPORTED
from aletheia.stats.formats import (
    Detected,
    ProfileError,
    UnsupportedFormatError,
    detect_format,
    looks_binary,
)
from aletheia.stats.options import ProfileOptions
from aletheia.stats.rowlimit import RowTooLongError

if TYPE_CHECKING:
    from aletheia.stats.profiling import Profile

#: Custom object metadata holding the file's original relative path (``train/part-0.csv.gz``).
PATH_METADATA = "aletheia-path"
#: Other metadata keys accepted for the same purpose (``BlobStore.upload_file`` writes its own).
PATH_METADATA_ALIASES = (blobstore.PATH_METADATA, "filename")
#: Budget for the schema and statistics kept on the document (the rest goes to a blob).
DOC_BUDGET_BYTES = 200_000
DOC_MAX_COLUMNS = 100


def original_path(obj: dict[str, Any]) -> str | None:
    """The file's original relative path, from the object's custom metadata."""
    meta = obj.get("metadata") or {}
    for key in (PATH_METADATA, *PATH_METADATA_ALIASES):
        if meta.get(key):
            return str(meta[key])
    return None


def analyse(obj: dict[str, Any], ref: layout.BlobRef, gcs: Any, opts: ProfileOptions) -> dict:
    """Profile the object; a dict of fields for the document (terminal status included)."""
    # The profiler (Arrow, NumPy, DuckDB, DataSketches) is loaded by the first table,
    # not by the function's import: objects that are not tables never pay for it.
    from aletheia.stats.profiling import profile

    started = time.monotonic()
    source = BlobSource(gcs.bucket(obj["bucket"]).blob(obj["name"]), ref.sha256)
    head = source.head()
    try:
        detected = detect_format(original_path(obj), obj.get("contentType"), head)
        _check_text(source, detected)
        # One front-to-back pass: it hashes the bytes as it reads them, which verifies
        # the object's name. Parts read side by side would leave that hash unfinished
        # and cost a second download of the whole object to verify it.
        result = profile(source.open, detected, replace(opts, parts=1))
        source.verify()
    except UnsupportedFormatError as exc:
        return {"status": STATUS_UNSUPPORTED, "reason": str(exc)}
    except (ProfileError, RowTooLongError) as exc:
        return {"status": STATUS_FAILED, "reason": str(exc)}
    elapsed = time.monotonic() - started
    fields = result_fields(result, ref, gcs.bucket(obj["bucket"]))
    fields["timings"] = {
        "total_s": round(elapsed, 3),
        "bytes_read": source.bytes_read,
        "mb_per_s": round(source.bytes_read / 1e6 / elapsed, 2) if elapsed else None,
    }
    return fields


def _check_text(source: BlobSource, detected: Detected) -> None:
    if detected.format == "parquet":
        return
    head = source.head(decompress=detected.gzip)
    if not head:
        raise ProfileError("the file is empty")
    if looks_binary(head):
        raise ProfileError(
            f"binary content, not {detected.format.upper()} text",
            "upload the file with its real name/extension",
        )


def result_fields(result: Profile, ref: layout.BlobRef, bucket: Any) -> dict[str, Any]:
    """Document fields: schema+stats within budget; full profile and sample as blobs."""
    full = result.to_dict()
    sample_name = layout.sample_blob_name(ref.project, ref.sha256)
    bucket.blob(sample_name).upload_from_string(
        result.sample_jsonl(), content_type="application/x-ndjson"
    )
    profile_name = layout.profile_blob_name(ref.project, ref.sha256)
    bucket.blob(profile_name).upload_from_string(
        json.dumps(full, ensure_ascii=False).encode(), content_type="application/json"
    )
    kept = _columns_within_budget(full["stats"])
    truncated = kept < result.columns_total
    return {
        "status": STATUS_DONE,
        "reason": "; ".join(result.warnings) or None,
        "partial": result.partial,
        "warnings": result.warnings[:20],
        "notes": result.notes[:20],
        "format": result.format,
        "gzip": result.gzip,
        "rows": result.rows,
        "schema": {
            "columns": full["schema"][:kept],
            "columns_total": result.columns_total,
            "columns_in_doc": kept,
            "truncated": truncated,
        },
        "stats": {"columns": full["stats"][:kept]},
        "profile": f"gs://{bucket.name}/{profile_name}",
        "sample": {"blob": f"gs://{bucket.name}/{sample_name}", "rows": len(result.sample)},
    }


def _columns_within_budget(stats: list[dict[str, Any]]) -> int:
    """How many leading columns fit the document budget (schema and stats both count)."""
    used = 0
    for i, column in enumerate(stats[:DOC_MAX_COLUMNS]):
        used += 2 * len(json.dumps(column, default=str))
        if used > DOC_BUDGET_BYTES:
            return i
    return min(len(stats), DOC_MAX_COLUMNS)
