"""The one-request streamed upload against fake-gcs-server: a re-sent request is whole.

google-auth's session sends the same body object again after refreshing
its credentials on a refusal (a 401 when a token expired in flight). The
emulator never says 401, so the session here refreshes on the 412 of an
object that is in the way, and its refresh moves that object away: the
second sending must carry every byte, or the server waits for them until
the timeout.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import storage

from aletheia.cloud import config, layout
from aletheia.data import streamupload


class _RefreshedOnRefusal(AnonymousCredentials):
    """The emulator's anonymous credentials, with a refresh that runs ``on_refresh``."""

    def __init__(self, on_refresh: Callable[[], None]) -> None:
        super().__init__()
        self.refreshes = 0
        self._on_refresh = on_refresh

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self._on_refresh()


def test_a_body_the_session_sends_again_after_a_refresh_is_sent_whole(
    stack: config.Settings, gcs: storage.Client, tmp_path: Path
) -> None:
    data = os.urandom(256 << 10)
    path = tmp_path / "f"
    path.write_bytes(data)
    name = layout.blob_name("up", hashlib.sha256(data).hexdigest())
    in_the_way = gcs.bucket(stack.bucket).blob(name)
    in_the_way.upload_from_string(b"an older object under the name")
    credentials = _RefreshedOnRefusal(on_refresh=in_the_way.delete)
    session = AuthorizedSession(credentials, refresh_status_codes=(412,))
    client = storage.Client(project=gcs.project, credentials=credentials, _http=session)
    progress: list[int] = []

    with path.open("rb") as fh:
        body = streamupload.MultipartBody(
            {"name": name},
            fh,
            len(data),
            content_type="application/octet-stream",
            on_bytes=progress.append,
            hash_sha256=True,
        )
        resource = streamupload.post(client, stack.bucket, body)

    assert credentials.refreshes == 1  # sent twice: refused, refreshed, sent again
    assert int(resource["size"]) == len(data)
    assert gcs.bucket(stack.bucket).blob(name).download_as_bytes() == data
    assert (body.sent_crc32c(), body.sent_sha256()) == (
        resource["crc32c"],
        hashlib.sha256(data).hexdigest(),
    )
    assert sum(progress) == len(data)  # progress counts the bytes once
