"""Saving the local Firestore emulator's documents, on ``down`` and periodically meanwhile.

The emulator keeps documents in memory only. An export on ``down`` alone
loses everything since the last ``down`` when the emulator dies (killed, out
of memory, a reboot), and the next ``up`` silently brings back an old copy.
So a small process started with the stack (``python -m aletheia.devstack.autoexport``)
also exports every ``interval`` seconds (a minute unless ``local up
--export-every`` or the ``export_every`` setting says otherwise; 0 turns it
off) through the emulator's export endpoint, and ``up`` says which copy it
loaded and how old it is.

An export lands in ``incoming/`` and is moved into place only once the
emulator says it is complete, so an interrupted export never replaces a
good one; the older copy is removed right after. A reader may therefore
list a copy that is gone when it reads it: :func:`newest_export` then looks
again (the copy that replaced it is newer) and returns what it read, so no
caller has to read the files of a copy that may be replaced at any moment.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from aletheia.cloud.config import DEFAULT_EXPORT_EVERY_S, STACK_STATE_FILE

#: Where the stack keeps the Firestore emulator's saved documents for the next ``up``.
FIRESTORE_DATA_DIR = "firestore-data"
#: Seconds between periodic exports (``aletheia local up --export-every``, 0: only on ``down``).
EXPORT_INTERVAL_S = DEFAULT_EXPORT_EVERY_S

log = logging.getLogger("aletheia.devstack.autoexport")


def export_firestore(stack_dir: Path, address: str, project: str) -> Path:
    """Export the emulator's documents into the stack dir; the export directory.

    Raises ``requests.RequestException`` or ``ValueError`` when it cannot.
    """
    data = stack_dir / FIRESTORE_DATA_DIR
    incoming = data / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir(parents=True)
    body = {
        "database": f"projects/{project}/databases/(default)",
        "export_directory": str(incoming),
    }
    url = f"http://{address}/emulator/v1/projects/{project}:export"
    requests.post(url, json=body, timeout=300).raise_for_status()
    (export,) = list(incoming.iterdir())
    return install(data, export)


def install(data: Path, export: Path) -> Path:
    """Move a complete ``export`` into ``data``, then remove every older copy; its new path."""
    target = data / f"{export.name}-{time.time_ns()}"  # the emulator's names can repeat
    export.rename(target)
    for older in data.iterdir():
        if older.name != target.name:
            shutil.rmtree(older, ignore_errors=True)
    return target


@dataclass(frozen=True)
class SavedExport:
    """A complete export as it was found: its metadata file and when it was saved."""

    metadata: Path
    #: The metadata file's modification time (``time.time()`` scale), read when found.
    saved_at: float

    @property
    def directory(self) -> Path:
        """The export's directory."""
        return self.metadata.parent


#: Looks before giving up on a directory whose copies keep being replaced while they are
#: read (each replacement is a whole export, seconds apart: two looks are the most seen).
_LOOKS = 100


def newest_export(stack_dir: Path) -> SavedExport | None:
    """The newest complete export of this stack, if any, read in one consistent look.

    A copy listed but gone when read was replaced by a newer one meanwhile
    (the periodic saver removes the older copy right after moving the newer
    into place): the directory is looked at again, never reported empty.
    """
    data = stack_dir / FIRESTORE_DATA_DIR
    newest = None
    for _ in range(_LOOKS):
        newest, replaced = _look(data)
        if not replaced:
            break
    return newest


def _look(data: Path) -> tuple[SavedExport | None, bool]:
    """The newest export listed in ``data``, and whether a listed one was gone when read."""
    found: list[SavedExport] = []
    replaced = False
    for export in list(data.glob("firestore_export_*")):
        metadata = next(export.glob("*.overall_export_metadata"), None)
        try:
            saved_at = None if metadata is None else metadata.stat().st_mtime
        except FileNotFoundError:
            saved_at = None
        if metadata is not None and saved_at is not None:
            found.append(SavedExport(metadata, saved_at))
        elif not export.exists():
            replaced = True  # removed since it was listed: a newer copy took its place
        # else: not an export (the emulator writes the metadata file last)
    return max(found, key=lambda e: e.saved_at, default=None), replaced


def saved_export(stack_dir: Path) -> Path | None:
    """The newest complete export of this stack (its metadata file), if any."""
    newest = newest_export(stack_dir)
    return None if newest is None else newest.metadata


def describe_age(seconds: float) -> str:
    """``42 s``, ``3 min``, ``5.2 h``, ``2.0 days``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def main(argv: list[str] | None = None) -> None:
    """Export every ``--interval`` seconds until killed (``down`` stops it first)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack-dir", type=Path, required=True)
    parser.add_argument("--firestore", required=True, help="host:port of the emulator")
    parser.add_argument("--project", required=True)
    parser.add_argument("--interval", type=float, default=EXPORT_INTERVAL_S)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    state_file = args.stack_dir / STACK_STATE_FILE
    while True:
        time.sleep(args.interval)
        if not state_file.exists():
            return  # the stack is down (or was never recorded): nothing to save any more
        try:
            path = export_firestore(args.stack_dir, args.firestore, args.project)
        except (requests.RequestException, ValueError, OSError) as exc:
            log.warning("export failed (%s); the previous copy is kept", exc)
            continue
        log.info("saved %s", path)


if __name__ == "__main__":
    main()
