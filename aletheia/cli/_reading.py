"""The read interface for a command: a reader of the project the options name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aletheia.cli._common import settings
from aletheia.errors import NotFoundError
from aletheia.tracking.readapi import RunReader

if TYPE_CHECKING:
    from aletheia.cloud.config import Settings
    from aletheia.tracking.readapi import RunView


def reader(project: str | None) -> RunReader:
    """A :class:`~aletheia.tracking.readapi.RunReader` of ``project`` (default: the setting)."""
    from aletheia.cloud import clients
    from aletheia.tracking.firestore_reader import FirestoreReader

    resolved = settings(project=project)
    return FirestoreReader(clients.firestore_client(resolved), resolved.project)


def run_view(resolved: Settings, experiment: str, run: str) -> RunView:
    """Run ``run`` of ``experiment`` in the resolved project, or a NotFoundError with the fix."""
    try:
        return reader(resolved.project).get_run(experiment, run)
    except NotFoundError as exc:
        raise NotFoundError(
            f"there is no run {run!r} of experiment {experiment!r} in project {resolved.project!r}",
            f"check the ids with `aletheia runs list -e {experiment}` and the project with -p",
        ) from exc


__all__ = ["reader", "run_view"]
