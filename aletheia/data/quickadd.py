"""An unchanged re-add answered on this machine, without importing or asking the cloud clients.

``datasets add`` of data nobody touched since this machine added it is most
of a user's adds (a pipeline step re-run, a git hook). The full add asks the
server which version holds the data; before that, the CLI only has to
import the Firestore client, which costs more than the whole check. So the
CLI first tries :func:`unchanged_locally`, which answers "unchanged: NAME
vN" when *all* of these hold:

* the stat memo (:class:`aletheia.data.hashing.HashIndex`, with its
  racy-timestamp rule) answers every file, and the manifest they make has
  the digest this machine recorded after its last add of the same path, as
  the same dataset, of the same project, on the same target
  (:mod:`aletheia.data.addrecords`);
* nothing would be written: no lock file pin to add or change (the pin, if
  the path is in a repository, already names that version and path) and no
  workspace pull state naming another version.

Anything else (``None``) means the full add runs. The answer is marked
``checked="local"``: a version removed from another machine is not seen
(``--verify`` asks the server).
"""

from __future__ import annotations

import time
from pathlib import Path

from aletheia.cloud import layout
from aletheia.cloud.config import Settings
from aletheia.data import addrecords, gitignore, workspace
from aletheia.data.addresult import CHECKED_LOCAL, AddResult
from aletheia.data.cache import INDEX_FILE
from aletheia.data.hashing import HashIndex, StatKey
from aletheia.data.lockfile import LockFile, find_repo_root
from aletheia.data.manifests import FileEntry, encode_with_digest
from aletheia.data.scan import scan_tree_stats


def unchanged_locally(
    settings: Settings,
    cache_root: Path,
    project: str,
    name: str,
    path: Path,
    *,
    lock: bool | None,
    workdir: Path | None = None,
) -> AddResult | None:
    """The version ``path`` still is, if this machine can tell without the server (see module).

    ``cache_root`` is the local file cache's directory (where the stat memo and the
    records live); ``lock`` and ``workdir`` as for ``DatasetStore.add``.
    """
    started = time.perf_counter()
    layout.dataset(project, name)  # a bad name is refused by the full add, with its message
    records = addrecords.AddRecords(cache_root / addrecords.ADDS_FILE)
    resolved = Path(path).expanduser().resolve()
    added = records.get(addrecords.target_of(settings), project, name, resolved)
    if added is None or not _pin_unchanged(workdir, path, lock, project, name, added):
        return None
    pulled = workspace.PullState.load(workspace.workspace_dir(Path(path).expanduser()))
    entry = pulled.get(project, name)
    if entry is not None and entry.version != added.version:
        return None  # the next add's parent would come from the pull state: let it be updated
    scanned = scan_tree_stats(path)
    if len(scanned) != added.file_count:
        return None
    stats = {p: StatKey.of(st) for _, p, st in scanned}
    memo = HashIndex(cache_root / INDEX_FILE).lookup_many(stats.items())
    if len(memo) != len(scanned):
        return None  # a file changed (or is too fresh to trust its timestamps): hash it
    entries = [FileEntry(rel, memo[p], stats[p].size) for rel, p, _ in scanned]
    if encode_with_digest(entries)[1] != added.manifest_sha256:
        return None
    scan = round(time.perf_counter() - started, 3)
    return AddResult(
        name,
        added.version,
        False,
        added.parent,
        added.file_count,
        added.total_bytes,
        0,
        0,
        0,
        {"added": 0, "removed": 0, "changed": 0},
        seconds={"scan": scan, "total": scan},
        checked=CHECKED_LOCAL,
    )


def _pin_unchanged(
    workdir: Path | None,
    path: Path,
    lock: bool | None,
    project: str,
    name: str,
    added: addrecords.Added,
) -> bool:
    """True if the add would leave the lock file as it is (nothing to pin, or pinned already)."""
    if lock is False:
        return True
    root = find_repo_root(workdir)
    if root is None:
        return lock is None  # --lock outside a repository: the full add says what is wrong
    pin = LockFile.load(root).get(project, name)
    return (
        pin is not None
        and pin.version == added.version
        and pin.manifest_sha256 == added.manifest_sha256
        and pin.path == gitignore.repo_relative(root, Path(path))
    )
