"""LocalCache: atomic, verified, content-addressed files on disk (no emulator needed)."""

from __future__ import annotations

import hashlib
import os

import pytest

from aletheia.data.cache import LocalCache, safe_join
from aletheia.data.hashing import CHUNK_SIZE, sha256_file, sha256_files
from aletheia.errors import IntegrityError, ValidationError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_insert_is_sharded_read_only_and_verified(tmp_path):
    cache = LocalCache(tmp_path / "c")
    src = tmp_path / "f"
    src.write_bytes(b"payload")
    digest, size = cache.insert_file(src)
    assert (digest, size) == (sha(b"payload"), 7)
    obj = cache.path(digest)
    assert obj == tmp_path / "c" / "sha256" / digest[:2] / digest[2:]
    assert obj.read_bytes() == b"payload"
    assert obj.stat().st_mode & 0o777 == 0o444
    assert cache.has(digest) and list((tmp_path / "c" / "tmp").iterdir()) == []


def test_corruption_is_detected_and_the_object_removed(tmp_path):
    cache = LocalCache(tmp_path / "c")
    src = tmp_path / "f"
    src.write_bytes(b"good")
    digest, _ = cache.insert_file(src)
    obj = cache.path(digest)
    obj.chmod(0o644)
    obj.write_bytes(b"evil")
    assert not cache.has(digest)
    assert not obj.exists() and cache.stats.corrupt_removed == 1


def test_a_wrong_download_never_lands_under_a_digest_name(tmp_path):
    cache = LocalCache(tmp_path / "c")
    with pytest.raises(IntegrityError), cache.open_for_write(sha(b"expected")) as fh:
        fh.write(b"something else")
    assert not cache.path(sha(b"expected")).exists()
    assert list((tmp_path / "c" / "tmp").iterdir()) == []  # the temp file is gone too
    with cache.open_for_write(sha(b"expected")) as fh:
        fh.write(b"expected")
    assert cache.has(sha(b"expected"), verify="full")


def test_paths_escaping_the_root_are_refused(tmp_path):
    cache = LocalCache(tmp_path / "c")
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(ValidationError):
            safe_join(tmp_path, bad)
    with pytest.raises(ValidationError):
        cache.path("../" + "0" * 61)
    assert safe_join(tmp_path, "a/b.txt") == tmp_path.resolve() / "a" / "b.txt"


def test_streamed_hash_matches_hashlib_across_chunk_boundaries(tmp_path):
    sizes = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7]
    paths = []
    for n in sizes:
        p = tmp_path / f"f{n}"
        p.write_bytes(os.urandom(n))
        paths.append(p)
    expected = [(sha(p.read_bytes()), p.stat().st_size) for p in paths]
    assert sha256_files(paths, workers=3) == expected
    seen: list[int] = []
    assert sha256_file(paths[-1], seen.append) == expected[-1]
    assert sum(seen) == sizes[-1] and max(seen) <= CHUNK_SIZE
