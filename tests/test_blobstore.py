"""BlobStore against fake-gcs-server: dedup by HEAD, conditional creates, verified transfers."""

from __future__ import annotations

import hashlib
import io
import os
import threading

import pytest

from aletheia.cloud import layout
from aletheia.data.blobstore import HEAD_THRESHOLD, BlobStore
from aletheia.errors import IntegrityError, NotFoundError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def blobs(stack, gcs) -> BlobStore:
    return BlobStore(gcs, stack.bucket, "bs")


def test_upload_once_then_skip_after_one_head(blobs, tmp_path):
    blobs.single_request_max = 1 << 20  # the resumable path, without a 512 MiB file
    data = os.urandom(3 << 20)
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


@pytest.mark.parametrize("size", [100, HEAD_THRESHOLD], ids=["after-412", "after-head"])
def test_bytes_stored_without_a_name_are_named_once_by_a_data_file(
    blobs, tmp_path, gcs, stack, size
):
    # put_bytes stores without a file name; an add that finds the bytes stored gives them
    # its table's name in a new generation (whose event the function profiles), once.
    data = b"x\n" + b"1\n" * ((size - 2) // 2)
    blobs.put_bytes(data)
    path = tmp_path / "train.csv"
    path.write_bytes(data)
    name = layout.blob_name("bs", sha(data))
    generation = gcs.bucket(stack.bucket).get_blob(name).generation
    before = blobs.stats.head_requests
    assert blobs.upload_file(path, sha(data), len(data), relpath="d/train.csv").named
    assert blobs.stats.head_requests - before == 1  # one metadata read (after a 412, or the HEAD)
    stored = gcs.bucket(stack.bucket).get_blob(name)
    assert stored.metadata["relpath"] == "d/train.csv" and stored.generation != generation
    assert stored.download_as_bytes() == data
    again = blobs.upload_file(path, sha(data), len(data), relpath="other/train.csv")
    assert not again.named and not again.uploaded  # it has a name: nothing to do
    assert gcs.bucket(stack.bucket).get_blob(name).generation == stored.generation


def test_stored_bytes_of_a_file_that_is_no_table_cost_no_metadata_read(blobs, tmp_path):
    data = b"\x89PNG not a table"
    blobs.put_bytes(data)
    path = tmp_path / "cat.png"
    path.write_bytes(data)
    info = blobs.upload_file(path, sha(data), len(data), relpath="img/cat.png")
    assert not info.uploaded and not info.named
    assert blobs.stats.head_requests == 0


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


def _crc32c(data: bytes) -> str:
    import base64

    import google_crc32c

    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


@pytest.mark.parametrize("size", [HEAD_THRESHOLD - 1, 3 << 20])
def test_bytes_other_than_those_hashed_are_refused_and_not_kept(blobs, tmp_path, gcs, stack, size):
    hashed = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(os.urandom(size))  # the file changed after it was hashed: same size
    with pytest.raises(IntegrityError, match="changed while it was being added"):
        blobs.upload_file(path, sha(hashed), size, crc32c=_crc32c(hashed))
    assert list(gcs.bucket(stack.bucket).list_blobs(prefix="bs/")) == []
    assert blobs.stats.uploads == 0


def test_without_a_crc_the_bytes_are_rehashed_as_they_stream(blobs, tmp_path, gcs, stack):
    path = tmp_path / "f"
    path.write_bytes(b"now")
    with pytest.raises(IntegrityError, match="changed while it was being added"):
        blobs.upload_file(path, sha(b"was"), 3)  # a stale memo: no crc32c to compare with
    assert list(gcs.bucket(stack.bucket).list_blobs(prefix="bs/")) == []


def test_a_file_that_shrank_after_hashing_is_refused_at_once(blobs, tmp_path, gcs, stack):
    hashed = os.urandom(2 << 20)
    path = tmp_path / "f"
    path.write_bytes(hashed[: 1 << 20])  # truncated since: the promised length cannot be sent
    with pytest.raises(IntegrityError, match="changed while it was being added"):
        blobs.upload_file(path, sha(hashed), len(hashed), crc32c=_crc32c(hashed))
    assert list(gcs.bucket(stack.bucket).list_blobs(prefix="bs/")) == []


def test_upload_in_one_request_keeps_metadata_and_verifies(blobs, tmp_path, gcs, stack):
    data = os.urandom(5 << 20)  # above the library's 8 MiB multipart limit is the same path
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    info = blobs.upload_file(path, sha(data), len(data), relpath="t/x.csv", crc32c=_crc32c(data))
    assert info.uploaded and blobs.stats.uploads == 1 and blobs.stats.head_requests == 1
    blob = gcs.bucket(stack.bucket).get_blob(layout.blob_name("bs", sha(data)))
    assert blob.size == len(data) and blob.crc32c == _crc32c(data)
    assert blob.metadata == {"relpath": "t/x.csv"} and blob.content_type == "text/csv"


def test_a_name_the_bucket_refuses_leaves_the_upload_done(blobs, tmp_path, monkeypatch):
    # Naming rewrites the object; a bucket that refuses the rewrite (an account allowed to
    # create objects but not to replace them) must not fail the add whose bytes are stored.
    from google.api_core import exceptions as gexc
    from google.cloud.storage import Blob

    data = b"x\n1\n2\n"
    blobs.put_bytes(data)
    path = tmp_path / "t.csv"
    path.write_bytes(data)

    def refused(self, *args, **kwargs):
        raise gexc.Forbidden("storage.objects.delete denied")

    monkeypatch.setattr(Blob, "rewrite", refused)
    info = blobs.upload_file(path, sha(data), len(data), relpath="t.csv")
    assert not info.uploaded and not info.named
