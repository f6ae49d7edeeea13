"""Firestore and Cloud Storage clients built from :class:`~aletheia.cloud.config.Settings`.

The Google client libraries only learn about emulators from environment
variables read in their constructors. Building clients here, with those
variables set for the duration of the constructor only, keeps the rest of
aletheia free of environment juggling and lets one process talk to two
targets (the tests do).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aletheia.cloud.config import Settings
from aletheia.cloud.lazy import firestore, requests, storage
from aletheia.errors import BackendUnavailableError, CredentialsError

_ENV_LOCK = threading.Lock()
_PROBE_TIMEOUT_S = 3.0


@contextmanager
def _temporary_env(**values: str | None) -> Iterator[None]:
    """Set (or unset, for ``None``) environment variables while constructing a client."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        try:
            for key, value in values.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def firestore_client(settings: Settings, *, probe: bool = True) -> firestore.Client:
    """A Firestore client for the configured target.

    With ``probe`` the emulator is pinged first, so a stack that is not
    running fails in milliseconds with advice instead of hanging in retries.
    When a Firebase user is signed in (see :mod:`aletheia.cloud.auth`), the client
    acts as that user and the security rules apply.
    """
    from aletheia.cloud import usercreds  # google-auth: only when a client is built

    user = usercreds.user_credentials(settings)
    if settings.uses_emulators:
        host = _require_emulator(settings.firestore_emulator_host, "firestore", settings)
        if probe:
            probe_emulator(f"http://{host}/", "firestore")
        with _temporary_env(FIRESTORE_EMULATOR_HOST=host):
            if user is not None:
                return usercreds.EmulatorUserClient(
                    project=settings.cloud_project, credentials=user
                )
            return firestore.Client(project=settings.cloud_project)
    credentials = user or _cloud_credentials(settings)
    with _temporary_env(FIRESTORE_EMULATOR_HOST=None):
        return firestore.Client(project=settings.cloud_project, credentials=credentials)


def acting_uid(db: firestore.Client) -> str | None:
    """The Firebase uid a client acts as, or ``None`` for server credentials."""
    from aletheia.cloud.usercreds import FirebaseUserCredentials

    creds = getattr(db, "_credentials", None)
    return creds.uid if isinstance(creds, FirebaseUserCredentials) else None


def storage_client(settings: Settings, *, probe: bool = True) -> storage.Client:
    """A Cloud Storage client for the configured target."""
    if settings.uses_emulators:
        url = _require_emulator(settings.storage_emulator_host, "storage", settings)
        if probe:
            probe_emulator(f"{url}/storage/v1/b?project={settings.cloud_project}", "storage")
        from google.auth.credentials import AnonymousCredentials

        with _temporary_env(STORAGE_EMULATOR_HOST=url):
            return storage.Client(
                project=settings.cloud_project, credentials=AnonymousCredentials()
            )
    credentials = _cloud_credentials(settings)
    with _temporary_env(STORAGE_EMULATOR_HOST=None):
        return storage.Client(project=settings.cloud_project, credentials=credentials)


def probe_emulator(url: str, part: str) -> None:
    """Raise :class:`BackendUnavailableError` unless ``url`` answers an HTTP GET."""
    try:
        requests.get(url, timeout=_PROBE_TIMEOUT_S)
    except requests.RequestException as exc:
        raise BackendUnavailableError(
            f"the {part} emulator at {url} does not answer ({type(exc).__name__})",
            "start the local stack with `aletheia local up`, "
            "or check FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST",
        ) from exc


def _require_emulator(host: str | None, part: str, settings: Settings) -> str:
    if not host:
        raise BackendUnavailableError(
            f"no {part} emulator is configured and no local stack is running "
            f"(looked in {settings.stack_dir})",
            "run `aletheia local up`, or configure a cloud project "
            "(ALETHEIA_MODE=cloud, ALETHEIA_CLOUD_PROJECT, credentials)",
        )
    return host


def _cloud_credentials(settings: Settings) -> Any:
    """Service-account credentials from a file, or application-default ones."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    from google.oauth2 import service_account

    path = settings.credentials_file
    try:
        if path is not None:
            if not path.is_file():
                raise CredentialsError(
                    f"credentials file {path} does not exist",
                    "fix GOOGLE_APPLICATION_CREDENTIALS / ALETHEIA_CREDENTIALS",
                )
            return service_account.Credentials.from_service_account_file(str(path))
        credentials, _ = google.auth.default()
        return credentials
    except (DefaultCredentialsError, ValueError) as exc:
        raise CredentialsError(
            f"no usable Google Cloud credentials: {exc}",
            "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
        ) from exc
