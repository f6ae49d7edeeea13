"""Signing in as a Firebase user, so that ``firestore.rules`` judge what the client does.

Server credentials (a service account, ADC) bypass Firestore's security
rules: IAM alone governs them. A teammate who should only read one project
signs in as a Firebase user instead::

    aletheia auth login --email ana@example.com

The sign-in goes to Firebase Auth's REST API (Identity Toolkit; in local
mode the Auth emulator of ``aletheia local up --auth``). Only the refresh
token is kept, in a 0600 file per cloud project; each process trades it for
a one-hour ID token and renews that before it expires. The Firestore client
then sends the ID token as its bearer token, exactly as Firebase's own SDKs
do, and every read and write is checked against the project's ``members``.

Which identity a client uses is the ``identity`` setting: ``user`` (fail if
nobody is signed in), ``server``, or ``auto`` (the signed-in user if there is
one for this cloud project, else server credentials).

Cloud Storage does not understand Firebase ID tokens; blobs are always
reached with Google credentials, so bucket access is IAM's to grant.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aletheia.cloud.config import Settings, default_user_credentials
from aletheia.cloud.lazy import requests
from aletheia.errors import BackendUnavailableError, ConfigError, CredentialsError

#: API key sent to the Auth emulator, which accepts any.
EMULATOR_API_KEY = "local-emulator"
_TIMEOUT_S = 15.0

# Identity Toolkit's error codes, and what to tell the user.
_SIGN_IN_ERRORS = {
    "EMAIL_NOT_FOUND": "no user has this email",
    "INVALID_PASSWORD": "the password is wrong",
    "INVALID_LOGIN_CREDENTIALS": "the email or password is wrong",
    "USER_DISABLED": "this user has been disabled",
    "EMAIL_EXISTS": "a user with this email already exists (sign in instead)",
    "WEAK_PASSWORD": "the password is too weak (6 characters at least)",
    "INVALID_EMAIL": "the email address is malformed",
    "TOKEN_EXPIRED": "the sign-in has expired",
    "INVALID_REFRESH_TOKEN": "the sign-in is no longer valid",
    "USER_NOT_FOUND": "the signed-in user no longer exists",
    "OPERATION_NOT_ALLOWED": "email/password sign-in is not enabled for this project",
}


@dataclass(frozen=True)
class TokenGrant:
    """What Firebase Auth returns on sign-in or refresh."""

    uid: str
    email: str | None
    id_token: str
    refresh_token: str
    expires_at: dt.datetime  # naive UTC, as google-auth compares expiries


@dataclass(frozen=True)
class SignedInUser:
    """The user ``aletheia auth login`` remembers for one cloud project."""

    uid: str
    email: str | None
    refresh_token: str
    cloud_project: str


class IdentityToolkit:
    """Firebase Auth's REST API (Identity Toolkit and Secure Token), or its emulator."""

    def __init__(self, api_key: str, emulator_host: str | None = None) -> None:
        self.api_key = api_key
        self.emulator_host = emulator_host

    def sign_in_with_password(self, email: str, password: str) -> TokenGrant:
        """Exchange an email and password for tokens."""
        body = {"email": email, "password": password, "returnSecureToken": True}
        data = self._post("identitytoolkit.googleapis.com", "accounts:signInWithPassword", body)
        return _grant(data["localId"], data.get("email"), data)

    def sign_up(self, email: str, password: str) -> TokenGrant:
        """Create an email/password user and sign in as it."""
        body = {"email": email, "password": password, "returnSecureToken": True}
        data = self._post("identitytoolkit.googleapis.com", "accounts:signUp", body)
        return _grant(data["localId"], data.get("email"), data)

    def refresh(self, refresh_token: str) -> TokenGrant:
        """A fresh ID token for a refresh token."""
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        data = self._post("securetoken.googleapis.com", "token", body)
        normalised = {
            "idToken": data["id_token"],
            "refreshToken": data["refresh_token"],
            "expiresIn": data["expires_in"],
        }
        return _grant(data["user_id"], None, normalised)

    def _post(self, service: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
        base = (
            f"http://{self.emulator_host}/{service}" if self.emulator_host else f"https://{service}"
        )
        url = f"{base}/v1/{method}"
        try:
            resp = requests.post(url, params={"key": self.api_key}, json=body, timeout=_TIMEOUT_S)
        except requests.RequestException as exc:
            raise BackendUnavailableError(
                f"Firebase Auth at {base} does not answer ({type(exc).__name__})",
                "start the Auth emulator with `aletheia local up --auth`"
                if self.emulator_host
                else "check the network",
            ) from exc
        if resp.status_code != 200:
            raise _auth_error(resp)
        result: dict[str, Any] = resp.json()
        return result


def _grant(uid: str, email: str | None, data: dict[str, Any]) -> TokenGrant:
    lifetime = dt.timedelta(seconds=int(data["expiresIn"]))
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return TokenGrant(uid, email, data["idToken"], data["refreshToken"], now + lifetime)


def _auth_error(resp: requests.Response) -> CredentialsError:
    try:
        code = str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        code = f"HTTP {resp.status_code}"
    # Codes may carry detail after a colon: "WEAK_PASSWORD : Password should be ...".
    key = code.split(":")[0].strip()
    if "API key not valid" in code or key == "API_KEY_INVALID":
        return CredentialsError(
            "Firebase Auth refused the API key",
            "set firebase_api_key to the key `terraform output -raw firebase_api_key` prints",
        )
    reason = _SIGN_IN_ERRORS.get(key, code)
    return CredentialsError(
        f"Firebase sign-in failed: {reason}", "check it, then `aletheia auth login`"
    )


# --------------------------------------------------------------------------- settings


def toolkit_for(settings: Settings) -> IdentityToolkit:
    """The Firebase Auth endpoint of the configured target."""
    if settings.uses_emulators:
        if not settings.auth_emulator_host:
            raise BackendUnavailableError(
                "the local stack runs no Firebase Auth emulator",
                "start it with `aletheia local up --auth` (needs firebase-tools), "
                "or set FIREBASE_AUTH_EMULATOR_HOST",
            )
        return IdentityToolkit(
            settings.firebase_api_key or EMULATOR_API_KEY, settings.auth_emulator_host
        )
    if not settings.firebase_api_key:
        raise ConfigError(
            "signing in as a Firebase user needs the project's web API key",
            "set ALETHEIA_FIREBASE_API_KEY (or firebase_api_key in the config file) to "
            "`terraform output -raw firebase_api_key`",
        )
    return IdentityToolkit(settings.firebase_api_key)


def user_file(settings: Settings) -> Path:
    """Where the signed-in user of this target is kept."""
    return settings.user_credentials or default_user_credentials(settings.cloud_project)


def login(settings: Settings, email: str, password: str, *, create: bool = False) -> SignedInUser:
    """Sign in (or, with ``create``, sign up) and remember the user for this cloud project."""
    toolkit = toolkit_for(settings)
    grant = (
        toolkit.sign_up(email, password)
        if create
        else toolkit.sign_in_with_password(email, password)
    )
    user = SignedInUser(
        grant.uid, grant.email or email, grant.refresh_token, settings.cloud_project
    )
    _save(user_file(settings), user)
    return user


def logout(settings: Settings) -> SignedInUser | None:
    """Forget the signed-in user of this target; returns who it was."""
    user = signed_in_user(settings)
    user_file(settings).unlink(missing_ok=True)
    return user


def signed_in_user(settings: Settings) -> SignedInUser | None:
    """The remembered user of this target, or ``None``."""
    path = user_file(settings)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        user = SignedInUser(**data)
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        if not os.access(path.parent, os.X_OK):
            return None  # another OS user's directory: nobody signed in here for this user
        raise _unreadable(path, exc) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise _unreadable(path, exc) from exc
    if user.cloud_project != settings.cloud_project:
        raise CredentialsError(
            f"{path} holds a sign-in for cloud project {user.cloud_project!r}, "
            f"not {settings.cloud_project!r}",
            "point ALETHEIA_USER_CREDENTIALS elsewhere, or sign in again",
        )
    return user


def _unreadable(path: Path, exc: Exception) -> CredentialsError:
    return CredentialsError(
        f"the signed-in user file {path} is unreadable: {exc}",
        "run `aletheia auth logout`, then `aletheia auth login`",
    )


def _save(path: Path, user: SignedInUser) -> None:
    """Write the user file readable by its owner only (it holds a long-lived token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # O_CREAT keeps an existing file's mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(user), handle, indent=2)
    tmp.replace(path)
