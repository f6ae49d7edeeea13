"""BlobStore against fake-gcs-server: dedup by HEAD, conditional creates, verified transfers."""

from __future__ import annotations

import hashlib
import io
import os
import threading

import pytest

from aletheia.cloud import layout
from aletheia.data.blobstore import HEAD_THRESHOLD, RESUMABLE_THRESHOLD, BlobStore
from aletheia.errors import NotFoundError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def blobs(stack, gcs) -> BlobStore:
    return BlobStore(gcs, stack.bucket, "bs")


def test_upload_once_then_skip_after_one_head(blobs, tmp_path):
    data = os.urandom(RESUMABLE_THRESHOLD + 1234)  # resumable path
    path = tmp_path / "f"
    path.write_bytes(data)
    seen: list[int] = []
    first = blobs.upload_file(path, sha(data), len(data), on_bytes=seen.append)
    assert first.uploaded and sum(seen) >= len(data)
    again = blobs.upload_file(path, sha(data), len(data))
    assert not again.uploaded
    stats = blobs.stats
    assert (stats.uploads, stats.uploads_skipped, stats.head_requests) == (1, 1, 2)
    assert stats.bytes_uploaded == len(data)
    out = io.BytesIO()
    assert blobs.download_to(sha(data), out) == len(data)
    assert out.getvalue() == data


def test_small_file_goes_up_without_a_head_and_a_repeat_keeps_the_stored_object(
    blobs, tmp_path, gcs, stack
):
    data = os.urandom(HEAD_THRESHOLD - 1)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert blobs.upload_file(path, sha(data), len(data)).uploaded
    name = layout.blob_name("bs", sha(data))
    generation = gcs.bucket(stack.bucket).get_blob(name).generation
    assert not blobs.upload_file(path, sha(data), len(data)).uploaded  # the 412 says "there"
    stats = blobs.stats
    assert (stats.uploads, stats.uploads_skipped, stats.head_requests) == (1, 1, 0)
    assert stats.bytes_uploaded == len(data)
    assert gcs.bucket(stack.bucket).get_blob(name).generation == generation


def test_concurrent_uploaders_of_the_same_bytes_never_fail(blobs, tmp_path, gcs, stack):
    data = os.urandom(200_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    barrier = threading.Barrier(6)
    results, errors = [], []

    def upload() -> None:
        barrier.wait()
        try:
            results.append(blobs.upload_file(path, sha(data), len(data)))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 6
    assert sum(r.uploaded for r in results) == blobs.stats.uploads == 1
    assert len(list(gcs.bucket(stack.bucket).list_blobs(prefix="bs/"))) == 1


def test_put_and_get_bytes_and_missing_blobs(blobs):
    info = blobs.put_bytes(b"small")
    assert info.uploaded and blobs.get_bytes(info.sha256) == b"small"
    assert not blobs.put_bytes(b"small").uploaded
    with pytest.raises(NotFoundError):
        blobs.get_bytes(sha(b"never stored"))
    with pytest.raises(NotFoundError):
        blobs.download_to(sha(b"never stored"), io.BytesIO())
    assert blobs.delete(info.sha256) and not blobs.delete(info.sha256)
