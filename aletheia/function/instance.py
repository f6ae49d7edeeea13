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


def bucket_name() -> str:
    """The bucket this instance serves (setting ``bucket``)."""
    return settings().bucket
