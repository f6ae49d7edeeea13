"""The hash-and-upload stage of ``datasets add``: each file goes up as soon as it is hashed.

Hashing (CPU, a couple of threads) and uploading (network, many threads)
overlap instead of following each other, so an add of new data takes about
as long as the slower of the two rather than their sum. Per file:

* The stat memo (:class:`aletheia.data.hashing.HashIndex`) answers for files
  nobody touched; the rest are hashed (sha256 and crc32c in one read).
* A digest the parent version already holds is not uploaded at all; one
  seen earlier in this add (duplicate content) is uploaded once.
* The upload is checked against the crc32c taken while hashing, so a file
  changed in between is caught without reading it a second time; files the
  memo answered are re-hashed as they stream instead
  (:meth:`aletheia.data.blobstore.BlobStore.upload_file`).

Nothing is recorded here: uploads are content-addressed, so an add killed
midway leaves only blobs that the next add finds (412 or HEAD) and skips.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from aletheia.data.blobstore import BlobInfo, BlobStore
from aletheia.data.hashing import FileDigest, HashIndex, OnBytes, StatKey, digest_file
from aletheia.data.manifests import FileEntry
from aletheia.data.phases import PhaseTimes
from aletheia.data.transfer import TRANSFER_WORKERS, Reporter
from aletheia.errors import IntegrityError


@dataclass
class Stage:
    """What the stage found and did."""

    #: One entry per file, in the order of the scan.
    entries: list[FileEntry]
    #: ``{sha256: a local file with those bytes}``.
    sources: dict[str, Path]
    #: Bytes read to hash (files the memo did not answer).
    bytes_hashed: int = 0
    #: Files hashed (not answered by the memo).
    files_hashed: int = 0
    #: Blobs uploaded (not already in the bucket).
    uploaded: int = 0
    #: Digests this stage sent to the bucket (uploaded or found there).
    stored: set[str] = field(default_factory=set)
    #: Digests whose object this stage created (not in the bucket before): the storage
    #: function has yet to analyse them.
    created: set[str] = field(default_factory=set)
    #: Digests stored before without a file name, which this stage gave theirs: the
    #: storage function analyses them again, as data files.
    named: set[str] = field(default_factory=set)


def hash_and_upload(
    files: Sequence[tuple[str, Path]],
    stats: dict[Path, StatKey],
    memo: dict[Path, str],
    known: Collection[str],
    *,
    blobs: BlobStore,
    index: HashIndex,
    reporter: Reporter,
    times: PhaseTimes,
    hash_workers: int,
    upload_workers: int = TRANSFER_WORKERS,
    after_hashing: Callable[[list[FileEntry]], None] | None = None,
) -> Stage:
    """Hash what the memo does not know and upload what ``known`` (the parent's digests) lacks.

    ``stats`` are the files' stat keys taken before hashing: a digest is
    memoised only if the file's key is the same after it was read.
    ``after_hashing(entries)`` runs once every file has its digest, while
    the last uploads are still going (the caller writes its records then). The
    first error stops the stage: work not started is cancelled, and it is
    raised once what was running has finished.
    """
    todo = [p for _, p in files if p not in memo]
    sizes = {p: stats[p].size for _, p in files}
    memo_new = {memo[p]: p for _, p in files if p in memo and memo[p] not in known}
    # One bar of the data's bytes: a file hashed here counts half as it is read and half
    # as it goes up (or is found there); one the memo answered counts as it goes up.
    total = sum(sizes[p] for p in todo) + sum(sizes[p] for p in memo_new.values())
    read_here = set(todo)
    digests: dict[Path, FileDigest] = {}
    sources: dict[str, Path] = {}
    uploads: dict[str, Future[BlobInfo]] = {}
    with (
        reporter.phase("adding", total) as whole,
        ThreadPoolExecutor(max_workers=max(1, hash_workers)) as hashers,
        ThreadPoolExecutor(max_workers=max(1, upload_workers)) as uploaders,
    ):
        odd = [0]  # bytes halved so far, modulo 2: the halves add up to the whole
        odd_lock = threading.Lock()

        def half(n: int) -> None:
            with odd_lock:
                odd[0], step = (odd[0] + n) % 2, (odd[0] + n) // 2
            whole(step)

        def advance(path: Path) -> OnBytes:
            return half if path in read_here else whole

        def upload(path: Path, sha: str, size: int, crc32c: str | None, rel: str) -> BlobInfo:
            try:
                return blobs.upload_file(
                    path, sha, size, on_bytes=advance(path), relpath=rel, crc32c=crc32c
                )
            except IntegrityError:
                index.forget(path)  # hashed again next time
                raise

        def send(path: Path, sha: str, crc32c: str | None) -> None:
            sources.setdefault(sha, path)  # a commit whose parent moved may need any of them
            if sha in known or sha in uploads:
                advance(path)(sizes[path])  # nothing to send: the bar still moves past it
                return
            uploads[sha] = uploaders.submit(upload, path, sha, sizes[path], crc32c, rels[path])

        def hashed(path: Path) -> FileDigest:
            with times.timed("hash"):
                return digest_file(path, half)

        rels = {p: rel for rel, p in files}
        for sha, path in memo_new.items():
            send(path, sha, None)
        for _, path in files:
            if path in memo:
                sources.setdefault(memo[path], path)
        try:
            pending = {hashers.submit(hashed, p): p for p in todo}
            _drain(pending, lambda fut: _on_hashed(fut, pending, digests, send), [hashers])
            entries = [
                FileEntry(rel, digests[p].sha256, digests[p].size)
                if p in digests
                else FileEntry(rel, memo[p], stats[p].size)
                for rel, p in files
            ]
            if after_hashing is not None:
                after_hashing(entries)
            _drain(dict.fromkeys(uploads.values()), lambda _fut: None, [])
        except BaseException:
            # An error, or Ctrl-C: what is queued is dropped, only what runs is waited for
            # (the pools' exit). Uploads are content-addressed: nothing half-done is recorded.
            for pool in (hashers, uploaders):
                pool.shutdown(wait=False, cancel_futures=True)
            raise
    stable = [
        (p, stats[p], d.sha256) for p, d in digests.items() if StatKey.of(p.stat()) == stats[p]
    ]
    index.record_many(stable)  # only files that did not change while they were read
    sent = {sha: f.result() for sha, f in uploads.items()}
    return Stage(
        entries,
        sources,
        bytes_hashed=sum(d.size for d in digests.values()),
        files_hashed=len(digests),
        uploaded=sum(1 for info in sent.values() if info.uploaded),
        stored=set(uploads),
        created={sha for sha, info in sent.items() if info.uploaded},
        named={sha for sha, info in sent.items() if info.named},
    )


def _on_hashed(
    fut: Future[FileDigest],
    pending: dict[Future[FileDigest], Path],
    digests: dict[Path, FileDigest],
    send: Callable[[Path, str, str | None], None],
) -> None:
    path = pending[fut]
    found = fut.result()
    digests[path] = found
    send(path, found.sha256, found.crc32c)


def _drain(futures: dict, on_done: Callable[[Future], None], pools: list) -> None:
    """Wait for ``futures``, calling ``on_done`` for each as it completes; raise the first error.

    ``pools`` are shut down (queued work cancelled) before the error is raised.
    ``as_completed`` takes each future's lock a few times in all; a loop of
    ``wait(left, FIRST_COMPLETED)`` takes every remaining one at every completion
    (N²/2 for N files: the CPU of adding 10,000 small files grew with its square).
    """
    for fut in as_completed(futures):
        error = fut.exception()
        if error is not None:
            for pool in pools:
                pool.shutdown(wait=False, cancel_futures=True)
            raise error
        on_done(fut)
