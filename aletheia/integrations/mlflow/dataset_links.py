"""Which aletheia dataset version an MLflow dataset input is, when it is one.

``mlflow.log_input(mlflow.data.from_pandas(df, source=path))`` describes data
MLflow does not keep. When ``path`` is a file of an aletheia dataset, the run
should name that dataset version like ``run.get_dataset`` does, so that the
lineage (``aletheia datasets`` "which runs used this data") finds MLflow runs
too. A local source is recognised:

* by place: a path inside a checkout of the local cache
  (``<cache>/checkouts/<project>/<name>/<version>/...``, where
  ``DatasetStore.get`` puts versions) is that exact version;
* by content: a file whose sha256 is a file of a dataset's latest manifest is
  the version that introduced those bytes there.

Anything else (code, remote URIs, data held only in memory) links to nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from aletheia.cloud import layout
from aletheia.data import lineage
from aletheia.data.hashing import sha256_file
from aletheia.errors import AletheiaError


def local_path(source_type: str | None, source: str | None) -> Path | None:
    """The local file or directory an MLflow dataset source names, if it names one."""
    if source_type != "local" or not source:
        return None
    try:
        uri = json.loads(source).get("uri")
    except (ValueError, AttributeError):
        return None
    if not isinstance(uri, str):
        return None
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return None
    path = Path(unquote(parsed.path if parsed.scheme else uri)).expanduser()
    return path if path.exists() else None


def find_version(db: Any, project: str, cache_root: Path, path: Path) -> tuple[str, str] | None:
    """``(dataset, version)`` that ``path`` is a checkout or a file of, else None."""
    checkouts = (cache_root / "checkouts" / project).resolve()
    try:
        parts = path.resolve().relative_to(checkouts).parts
    except ValueError:
        parts = ()
    if len(parts) >= 2 and parts[0] != "artifacts":
        try:
            return layout.validate_id(parts[0]), layout.validate_id(parts[1])
        except AletheiaError:
            return None
    if not path.is_file():
        return None
    sha256, _ = sha256_file(path)
    hits = lineage.dataset_versions_with_file(db, project, sha256)
    found = sorted((str(h["dataset"]), str(h["version"])) for h in hits if h.get("version"))
    return found[0] if found else None


def run_fields(doc: Any, links: list[tuple[str, str]]) -> dict[str, Any]:
    """The run document's ``datasets``/``dataset_refs`` with ``links`` added (as
    ``Run.record_dataset`` writes them), for a run not open in this process."""
    used = [dict(d) for d in (doc.get("datasets") or [])]
    for name, version in links:
        entry = {"name": name, "version": version}
        if entry not in used:
            used.append(entry)
    refs = [layout.dataset_ref(str(d["name"]), str(d["version"])) for d in used]
    return {"datasets": used, "dataset_refs": refs}


__all__ = ["find_version", "local_path", "run_fields"]
