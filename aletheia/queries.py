"""Every Firestore query the client runs, defined in one place.

Production Firestore refuses a query that needs a composite index it does
not have; the emulator does not. Keeping every query here lets a test
check each one against ``firestore.indexes.json``, so a missing index fails
our tests rather than a user's run. Each function returns an unexecuted
``Query``; callers stream it.
"""

from __future__ import annotations
