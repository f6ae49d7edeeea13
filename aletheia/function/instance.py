"""A function instance's settings and clients: built once from its environment, then reused.

Every entry point (the storage event, the sweep, the download function) runs
in an instance that serves many requests; one client each keeps connections
warm and is what Cloud Functions recommends.
"""

from __future__ import annotations

import functools
from typing import Any

from google.cloud import firestore

from aletheia.cloud import clients, config


@functools.lru_cache(maxsize=1)
def settings() -> config.Settings:
    """The instance's settings (its environment)."""
    return config.resolve()


@functools.lru_cache(maxsize=1)
def db() -> firestore.Client:
    """The instance's Firestore client."""
    return clients.firestore_client(settings(), probe=False)


@functools.lru_cache(maxsize=1)
def gcs() -> Any:
    """The instance's Cloud Storage client."""
    return clients.storage_client(settings(), probe=False)


@functools.lru_cache(maxsize=1)
def manifest_cache() -> Any:
    """Dataset manifests this instance read, by content digest (a :class:`LocalCache`).

    Every file event of a version reads its manifest; manifests are
    content-addressed, so a copy kept in the instance's temporary directory
    is never stale, and a version of 10,000 files is downloaded once per
    instance, not 10,000 times.
    """
    import tempfile
    from pathlib import Path

    from aletheia.data.cache import LocalCache

    return LocalCache(Path(tempfile.gettempdir()) / "aletheia-function-manifests")


@functools.lru_cache(maxsize=1)
def decoded_manifests() -> Any:
    """The manifests this instance decoded last, in memory (a ``DecodedManifests``): the
    events of one version ask for its manifest one after another."""
    from aletheia.data.manifests import DecodedManifests

    return DecodedManifests()


def bucket_name() -> str:
    """The bucket this instance serves (setting ``bucket``)."""
    return settings().bucket
