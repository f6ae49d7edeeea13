"""The life of a ``Files/{sha256}`` document, as the storage function moves it along.

``seen`` → ``processing`` (a lease, taken in a transaction) → ``done`` |
``failed`` | ``unsupported``, each terminal status with its reason.
"""

from __future__ import annotations

STATUS_SEEN = "seen"
STATUS_PROCESSING = "processing"
STATUS_DONE = "done"
STATUS_FAILED = "failed"
STATUS_UNSUPPORTED = "unsupported"
TERMINAL = frozenset({STATUS_DONE, STATUS_FAILED, STATUS_UNSUPPORTED})
