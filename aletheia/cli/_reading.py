"""The read interface for a command: a reader of the project the options name."""

from __future__ import annotations

from aletheia.cli._common import settings
from aletheia.tracking.readapi import RunReader


def reader(project: str | None) -> RunReader:
    """A :class:`~aletheia.tracking.readapi.RunReader` of ``project`` (default: the setting)."""
    from aletheia.cloud import clients
    from aletheia.tracking.firestore_reader import FirestoreReader

    resolved = settings(project=project)
    return FirestoreReader(clients.firestore_client(resolved), resolved.project)


__all__ = ["reader"]
