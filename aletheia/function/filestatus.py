"""The life of a ``Files/{sha256}`` document, as the storage function moves it along.

``seen`` → ``processing`` (a lease, taken in a transaction) → ``done`` |
``failed`` | ``unsupported`` | ``deferred``, each terminal status with its reason.

``deferred`` is terminal for the function only: the file is larger than one
function invocation can profile (:func:`max_bytes`), and the document's
``hint`` names the command that profiles it with Spark
(:mod:`aletheia.spark.versionjob`), which takes it on to ``done``. Sweeps and
redeliveries leave it alone; nothing waits on it forever.
"""

from __future__ import annotations

import os

STATUS_SEEN = "seen"
STATUS_PROCESSING = "processing"
STATUS_DONE = "done"
STATUS_FAILED = "failed"
STATUS_UNSUPPORTED = "unsupported"
STATUS_DEFERRED = "deferred"
TERMINAL = frozenset({STATUS_DONE, STATUS_FAILED, STATUS_UNSUPPORTED, STATUS_DEFERRED})

#: The setting bounding the bytes one function invocation profiles.
MAX_BYTES_ENV = "ALETHEIA_FUNCTION_MAX_BYTES"
#: Its default. The function streams at 30-100 MB/s here (CSV slowest, gzip slower
#: still); 8 GiB at the slow end is ~5 minutes, leaving room in the 9-minute timeout.
DEFAULT_MAX_BYTES = 8 << 30
#: The command a ``deferred`` file's ``hint`` names (``{name}``: any dataset holding it).
SPARK_HINT = "profile it with Spark: aletheia datasets stats NAME --engine spark"


def max_bytes() -> int:
    """The largest object the function profiles itself (read at each call: a setting)."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    try:
        return int(raw) if raw else DEFAULT_MAX_BYTES
    except ValueError:
        return DEFAULT_MAX_BYTES
