"""Upload the built dashboard to Firebase Hosting: one command, no Node, no firebase-tools.

Firebase Hosting's REST API (``firebasehosting.googleapis.com/v1beta1``)
takes a site's files as a *version*: the client lists every path with the
SHA-256 of its gzip'd bytes (``populateFiles``), uploads only the bytes the
service lacks, finalizes the version and releases it. The site itself is
created by terraform (``terraform/hosting.tf``); the files are ``dist/``
(``make web``) plus a ``config.json`` for the cloud project, generated here
as ``aletheia ui`` generates it for localhost.

:func:`plan` is the pure part (files, hashes, headers); :func:`deploy` talks
to the API with the caller's Google credentials (``google-auth``'s
``AuthorizedSession``: ``gcloud auth application-default login`` or a
service account with the Firebase Hosting Admin role).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aletheia.cloud.config import Settings
from aletheia.errors import (
    AletheiaError,
    BackendUnavailableError,
    ConfigError,
    CredentialsError,
    NotFoundError,
)
from aletheia.webui.server import CONFIG_PATH, app_config, dist_dir

API = "https://firebasehosting.googleapis.com/v1beta1"
SCOPES = ("https://www.googleapis.com/auth/firebase.hosting",)
#: Site ids as Firebase Hosting accepts them.
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{4,28}[a-z0-9]$")

#: How browsers cache what the site serves: Vite's assets are named by content
#: (cache for a year); the page and its config change on every deploy (always ask).
HEADERS = [
    {"glob": "/assets/**", "headers": {"Cache-Control": "public, max-age=31536000, immutable"}},
    {"glob": "/index.html", "headers": {"Cache-Control": "no-cache"}},
    {"glob": CONFIG_PATH, "headers": {"Cache-Control": "no-cache"}},
]


@dataclass(frozen=True)
class Upload:
    """What a deploy sends: Hosting's version config and each file gzip'd, by path."""

    config: dict[str, Any]
    files: dict[str, bytes]  # site path -> gzip'd bytes

    @property
    def hashes(self) -> dict[str, str]:
        """``populateFiles``' map: site path -> SHA-256 (hex) of the gzip'd bytes."""
        return {path: hashlib.sha256(body).hexdigest() for path, body in self.files.items()}


def site_id(settings: Settings, site: str | None) -> str:
    """The Hosting site: ``site`` (``--site``), else terraform's default name."""
    chosen = site or f"{settings.cloud_project}-aletheia"
    if not _SITE_ID.match(chosen):
        raise ConfigError(
            f"invalid Firebase Hosting site id {chosen!r}",
            "6-30 lowercase letters, digits and hyphens: pass --site "
            "`terraform output -raw hosting_site`",
        )
    return chosen


def _gzip(data: bytes) -> bytes:
    # mtime=0: the same bytes always give the same hash, so an unchanged file is not re-sent.
    return gzip.compress(data, compresslevel=9, mtime=0)


def plan(settings: Settings, root: Path | None = None) -> Upload:
    """The files of the site: the built app and the cloud ``config.json``."""
    if settings.uses_emulators:
        raise ConfigError(
            "`aletheia ui deploy` publishes the dashboard for the cloud project, "
            "but the settings point at the local stack",
            'set ALETHEIA_MODE=cloud (or mode = "cloud" in the config file)',
        )
    config = app_config(settings)  # a ConfigError without the web API key
    base = root or dist_dir()
    files = {
        "/" + path.relative_to(base).as_posix(): _gzip(path.read_bytes())
        for path in sorted(base.rglob("*"))
        if path.is_file()
    }
    files[CONFIG_PATH] = _gzip(json.dumps(config, indent=1).encode())
    return Upload({"headers": HEADERS}, files)


def _call(session: Any, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
    resp = session.request(method, url, timeout=120, **kwargs)
    if resp.status_code < 300:
        return resp.json() if resp.content else {}
    message = f"Firebase Hosting refused to {what}: HTTP {resp.status_code} {resp.text[:300]}"
    error: type[AletheiaError] = BackendUnavailableError
    hint = "try again; Firebase Hosting answered with a server error"
    if resp.status_code in (401, 403):
        error = CredentialsError
        hint = "deploy with credentials that have the Firebase Hosting Admin role"
    elif resp.status_code == 404:
        error = NotFoundError
        hint = "create the site with `terraform apply` (terraform/hosting.tf) or pass --site"
    elif resp.status_code < 500:
        error = ConfigError
        hint = "check the site id (`terraform output -raw hosting_site`)"
    raise error(message, hint)


def deploy(settings: Settings, site: str | None = None, session: Any = None) -> str:
    """Upload and release the dashboard on ``site``; its URL (``https://<site>.web.app``)."""
    upload = plan(settings)
    name = site_id(settings, site)
    if session is None:
        import google.auth
        import google.auth.exceptions
        from google.auth.transport.requests import AuthorizedSession

        try:
            credentials, _ = google.auth.default(scopes=SCOPES)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise CredentialsError(
                f"no Google credentials to deploy with: {exc}",
                "run `gcloud auth application-default login`",
            ) from exc
        session = AuthorizedSession(credentials)
    version = _call(
        session,
        "POST",
        f"{API}/sites/{name}/versions",
        "create a version",
        json={"config": upload.config},
    )["name"]
    hashes = upload.hashes
    populated = _call(
        session,
        "POST",
        f"{API}/{version}:populateFiles",
        "list the files",
        json={"files": hashes},
    )
    by_hash = {h: path for path, h in hashes.items()}
    for digest in populated.get("uploadRequiredHashes", []):
        _call(
            session,
            "POST",
            f"{populated['uploadUrl']}/{digest}",
            f"upload {by_hash[digest]}",
            data=upload.files[by_hash[digest]],
            headers={"Content-Type": "application/octet-stream"},
        )
    _call(
        session,
        "PATCH",
        f"{API}/{version}",
        "finalize the version",
        params={"update_mask": "status"},
        json={"status": "FINALIZED"},
    )
    _call(
        session,
        "POST",
        f"{API}/sites/{name}/releases",
        "release the version",
        params={"versionName": version},
        json={},
    )
    return f"https://{name}.web.app/"
