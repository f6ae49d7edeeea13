"""A Spark DataFrame stored as a dataset version: Parquet parts through the normal add path.

Spark writes the DataFrame as Parquet parts into a staging directory the
driver can read; the parts are renamed ``part-00000.parquet``, … (Spark's own
names carry a random id, which would make the same data a new version every
time) and its bookkeeping files (``_SUCCESS``, ``.crc``) are left out; then
:meth:`aletheia.data.datasets.DatasetStore.add` hashes, uploads and commits
them like any ``datasets add``: the same dedup, parent choice, validation
and profiling by the storage function.

The staging directory must be visible to the executors and the driver as one
file system: a temporary directory is for local mode (``local[*]``); on a
cluster, pass ``staging`` on a shared mount.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from aletheia.errors import ValidationError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from aletheia.cloud.config import Settings
    from aletheia.data.datasets import AddResult


def add_dataset(
    df: DataFrame,
    name: str,
    *,
    project: str | None = None,
    desc: str | None = None,
    source: str | None = None,
    parent: str | None = None,
    staging: str | Path | None = None,
    settings: Settings | None = None,
) -> AddResult:
    """Write ``df`` as Parquet parts and register them as the next version of ``name``.

    ``settings``/``project`` choose the target as everywhere else (default:
    the configured ones). Returns what the add did (``version``,
    ``created``: False when the data equals the latest version's).
    """
    from aletheia.cloud import config, layout
    from aletheia.tracking.compose import Backend

    layout.validate_id(name, "dataset name")  # a bad name is refused before Spark writes
    resolved = settings or config.resolve()
    owned = staging is None
    root = Path(tempfile.mkdtemp(prefix="aletheia-spark-")) if owned else Path(str(staging))
    if not owned and root.exists() and any(root.iterdir()):
        raise ValidationError(
            f"the staging directory {root} is not empty", "pass an empty or new directory"
        )
    written = root / "spark-output"
    parts = root / name
    try:
        df.write.mode("overwrite").parquet(str(written))
        _keep_parts(written, parts)
        store = Backend(resolved, project).datasets()
        return store.add(name, parts, desc=desc, source=source, parent=parent, lock=False)
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def _keep_parts(written: Path, into: Path) -> None:
    """Spark's Parquet parts, in Spark's order, as ``part-00000.parquet``, …; nothing else."""
    found = sorted(p for p in written.glob("part-*") if p.name.endswith(".parquet"))
    into.mkdir(parents=True, exist_ok=True)
    if not found:  # an empty DataFrame still has a schema: Spark writes one empty part
        raise ValidationError("Spark wrote no Parquet part", "check the DataFrame")
    for i, part in enumerate(found):
        part.rename(into / f"part-{i:05d}.parquet")
