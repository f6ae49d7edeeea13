"""The SparkSession aletheia's Spark commands run in: the caller's, or one built for a master.

pyspark is an optional dependency: a missing one is a clear error naming the
extra to install, not an ImportError from deep inside a command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aletheia.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkMissingError(ConfigError):
    """pyspark is not installed."""


def require_pyspark() -> None:
    """Raise :class:`SparkMissingError` unless pyspark can be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise SparkMissingError(
            "this needs Apache Spark's Python package (pyspark), which is not installed",
            "pip install 'aletheia[spark]' (and Java 17+ for local mode)",
        ) from exc


def session(master: str | None = None, app_name: str = "aletheia") -> SparkSession:
    """The active SparkSession, else a new one on ``master`` (default ``local[*]``).

    Under ``spark-submit`` or Dataproc the session (and its master) already
    exists and is reused; ``master`` only applies to a session built here.
    The web UI is off: a profiling job has no one watching it, and it takes a port.
    Python workers run this interpreter unless ``PYSPARK_PYTHON`` says
    otherwise (Spark's default is whatever ``python3`` is first on PATH,
    which lacks this environment's packages).
    """
    import os
    import sys

    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).config("spark.ui.enabled", "false")
    return builder.master(master or "local[*]").getOrCreate()
