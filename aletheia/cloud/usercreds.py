"""Credentials and a Firestore client that act as the signed-in Firebase user.

Kept apart from :mod:`aletheia.cloud.auth` (sign-in, the user file) because
these classes subclass google-auth's and Firestore's, whose import costs
start-up: they are imported when a client is built, not when aletheia is.
"""

from __future__ import annotations

import threading
from typing import Any

from google.auth import credentials as ga_credentials
from google.cloud import firestore

from aletheia.cloud import auth
from aletheia.cloud.config import Settings
from aletheia.errors import CredentialsError


class FirebaseUserCredentials(ga_credentials.Credentials):  # type: ignore[misc]
    """google-auth credentials whose bearer token is a Firebase ID token.

    Given to a Firestore client, every RPC carries the user's ID token; it is
    renewed from the refresh token shortly before it expires.
    """

    def __init__(self, toolkit: auth.IdentityToolkit, user: auth.SignedInUser) -> None:
        super().__init__()
        self.toolkit = toolkit
        self.user = user
        self._lock = threading.Lock()

    @property
    def uid(self) -> str:
        """The Firebase uid the rules see as ``request.auth.uid``."""
        return self.user.uid

    def refresh(self, request: Any) -> None:
        """Trade the refresh token for a new ID token (google-auth calls this)."""
        grant = self.toolkit.refresh(self.user.refresh_token)
        self.token = grant.id_token
        self.expiry = grant.expires_at

    def fresh_token(self) -> str:
        """A valid ID token, renewed first if it is missing or about to expire."""
        with self._lock:
            if not self.valid:
                self.refresh(None)
            return str(self.token)


class EmulatorUserClient(firestore.Client):  # type: ignore[misc]
    """A Firestore client that talks to the emulator as a signed-in Firebase user.

    In emulator mode the library sends ``Bearer owner`` on every call, which
    bypasses the rules; this client sends the user's ID token instead, so
    the emulator judges each call exactly as production would.
    """

    @property
    def _rpc_metadata(self) -> list[tuple[str, str]]:
        base = [(k, v) for k, v in super()._rpc_metadata if k != "authorization"]
        token = self._credentials.fresh_token()
        return [*base, ("authorization", f"Bearer {token}")]


def user_credentials(settings: Settings) -> FirebaseUserCredentials | None:
    """The Firebase user the Firestore client acts as, or ``None`` for server credentials."""
    if settings.identity == "server":
        return None
    user = auth.signed_in_user(settings)
    if user is None:
        if settings.identity == "user":
            raise CredentialsError(
                "identity is 'user' but nobody is signed in for cloud project "
                f"{settings.cloud_project!r}",
                "run `aletheia auth login`, or set ALETHEIA_IDENTITY=server",
            )
        return None
    return FirebaseUserCredentials(auth.toolkit_for(settings), user)
