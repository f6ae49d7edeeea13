"""The download function: a member of a project fetches a run's diff, package list or artifacts.

The dashboard signs in with Firebase Auth and reads Firestore under the
rules, but Cloud Storage does not take Firebase ID tokens. This HTTP
function (``functions/main.py:download``) stands between them:

1. it verifies the caller's Firebase ID token (Google's public keys in the
   cloud; the Auth emulator's unsigned tokens only when the local stack's
   Auth emulator is configured, never otherwise) — 401 without a valid one;
2. it reads the project's ``members`` with its own credentials — 403 unless
   the caller has a role there;
3. it finds the object from the run's records
   (:mod:`aletheia.function.downloadables`) — 404 for anything the run does
   not record;
4. for an artifact file in the cloud it answers ``{"url": ...}``, a V4
   signed URL valid for minutes (signed through IAM ``signBlob`` as its own
   service account), and streams the bytes when signing is not possible;
   locally, where fake-gcs-server checks no signatures, and for the diff and
   package list (small text the page shows inline), it streams.

Requests are ``GET ?project=&experiment=&run=&object=diff|packages|artifact``
(``&name=&version=`` for an artifact: without ``&path=`` the answer lists the
version's files). Errors are JSON ``{"error", "hint"}``. CORS lets the
dashboard's origins (``ALETHEIA_DASHBOARD_ORIGINS``, comma-separated, and
loopback for ``aletheia ui``) send the ``Authorization`` header.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import flask
from google.auth import exceptions as auth_exceptions
from google.auth import jwt
from google.auth.transport import requests as auth_requests
from google.cloud import firestore
from google.oauth2 import id_token

from aletheia.cloud import config, layout, members
from aletheia.data.blobstore import BlobStore
from aletheia.errors import (
    AccessDeniedError,
    AletheiaError,
    BackendUnavailableError,
    NotFoundError,
    ValidationError,
)
from aletheia.function import downloadables, instance

log = logging.getLogger("aletheia.function.downloads")

#: Origins (besides loopback) allowed to call the function from a browser.
ORIGINS_ENV = "ALETHEIA_DASHBOARD_ORIGINS"
#: How long a signed URL stays valid.
SIGNED_URL_TTL = dt.timedelta(minutes=10)
#: Bytes per chunk when streaming an object.
CHUNK = 1 << 20
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")


class UnauthenticatedError(AletheiaError):
    """The request carries no Firebase ID token, or one that does not verify."""


# --------------------------------------------------------------------------- the request


def handle(request: flask.Request) -> flask.Response:
    """Answer one HTTP request (the functions-framework entry point calls this)."""
    origin = request.headers.get("Origin")
    if request.method == "OPTIONS":  # the browser's preflight for the Authorization header
        return _cors(flask.Response(status=204), origin)
    try:
        if request.method != "GET":
            raise ValidationError(f"method {request.method} is not supported", "use GET")
        settings = instance.settings()
        uid = verify_token(request.headers.get("Authorization"), settings)
        return _cors(_serve(request.args, uid, settings), origin)
    except AletheiaError as exc:
        return _cors(_error(exc), origin)
    except Exception:
        log.exception("download failed")
        return _cors(
            _json({"error": "the download failed on the server", "hint": "try again"}, 500),
            origin,
        )


def _serve(args: Mapping[str, str], uid: str, settings: config.Settings) -> flask.Response:
    project, experiment, run = (_arg(args, k) for k in ("project", "experiment", "run"))
    kind = args.get("object", "")
    if kind not in downloadables.KINDS:
        raise ValidationError(
            f"unknown object {kind!r}", f"ask for one of: {', '.join(downloadables.KINDS)}"
        )
    db = instance.db()
    require_member(db, project, uid)
    doc = downloadables.run_doc(db, project, experiment, run)
    blobs = BlobStore(instance.gcs(), settings.bucket, project)
    if kind != downloadables.ARTIFACT:
        # Small text the dashboard shows inline: streamed, so no bucket CORS is needed.
        return _send(blobs, downloadables.run_blob(doc, kind), sign=False)
    name, version = _arg(args, "name"), _arg(args, "version")
    downloadables.saved_artifact(doc, name, version)
    entries = downloadables.artifact_files(db, blobs, project, experiment, name, version)
    path = args.get("path")
    if not path:
        files = [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in entries]
        return _json({"name": name, "version": version, "files": files}, 200)
    target = downloadables.artifact_file(entries, path)
    return _send(blobs, target, sign=not settings.uses_emulators)


def _arg(args: Mapping[str, str], key: str) -> str:
    value = args.get(key)
    if not value:
        raise ValidationError(f"the request names no {key}", f"add ?{key}=... to the URL")
    return value


# --------------------------------------------------------------------------- who asks


def verify_token(header: str | None, settings: config.Settings) -> str:
    """The Firebase uid of a ``Bearer`` ID token; :class:`UnauthenticatedError` otherwise."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError(
            "no Firebase ID token", "sign in and send it as `Authorization: Bearer <token>`"
        )
    token = token.strip()
    try:
        if settings.uses_emulators and settings.auth_emulator_host:
            claims = _emulator_claims(token, settings.cloud_project)
        else:
            claims = _verified_claims(token, settings.cloud_project)
    except auth_exceptions.TransportError as exc:
        raise BackendUnavailableError(
            f"Google's token keys could not be fetched: {exc}", "try again"
        ) from exc
    except (ValueError, auth_exceptions.GoogleAuthError) as exc:
        raise UnauthenticatedError(f"the ID token is not valid: {exc}", "sign in again") from exc
    uid = (claims or {}).get("sub")
    if not isinstance(uid, str) or not uid:
        raise UnauthenticatedError("the ID token names no user", "sign in again")
    return uid


def _verified_claims(token: str, cloud_project: str) -> Mapping[str, Any]:
    """Claims of a Firebase ID token signed by Google (RS256; the emulator's are unsigned)."""
    header = token.split(".", 1)[0]
    try:
        alg = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))).get("alg")
    except (ValueError, AttributeError) as exc:
        raise ValueError("the token is not a JWT") from exc
    if alg != "RS256":  # refused before any key is fetched
        raise ValueError(f"the token is signed with {alg!r}, not RS256")
    claims: Mapping[str, Any] = id_token.verify_firebase_token(
        token, auth_requests.Request(), audience=cloud_project
    )
    return claims


def _emulator_claims(token: str, cloud_project: str) -> Mapping[str, Any]:
    """Claims of an Auth emulator token: unsigned, so only its fields are checked.

    Used only when the local stack's Auth emulator is configured; in the cloud
    every token is verified against Google's keys.
    """
    claims: Mapping[str, Any] = jwt.decode(token, verify=False)
    if claims.get("aud") != cloud_project:
        raise ValueError(f"the token is for {claims.get('aud')!r}, not {cloud_project!r}")
    if claims.get("iss") != f"https://securetoken.google.com/{cloud_project}":
        raise ValueError(f"the token was issued by {claims.get('iss')!r}")
    if float(claims.get("exp") or 0) < time.time():
        raise ValueError("the token has expired")
    return claims


def require_member(db: firestore.Client, project: str, uid: str) -> str:
    """The caller's role in ``project``; 403 for a non-member and for an unknown project alike."""
    try:
        return members.require_role(db, project, uid, "viewer")
    except NotFoundError as exc:  # saying "no such project" would tell outsiders which exist
        raise AccessDeniedError(f"{uid!r} is not a member of project {project!r}") from exc


# --------------------------------------------------------------------------- the answer


def _send(blobs: BlobStore, target: downloadables.Target, *, sign: bool) -> flask.Response:
    blob = blobs.bucket.blob(layout.blob_name(blobs.project, target.sha256))
    if sign:
        url = _signed_url(blob, target)
        if url:
            return _json({"url": url, "size": target.size, "filename": target.filename}, 200)
    try:
        blob.reload()
    except Exception as exc:
        raise NotFoundError("the recorded object is not in the bucket", "upload it again") from exc
    resp = flask.Response(_chunks(blob), status=200, mimetype=None)
    resp.headers["Content-Type"] = target.content_type
    resp.headers["Content-Disposition"] = f'attachment; filename="{target.filename}"'
    if blob.size is not None:
        resp.headers["Content-Length"] = str(blob.size)
    return resp


def _chunks(blob: Any) -> Iterator[bytes]:
    with blob.open("rb", chunk_size=CHUNK) as fh:
        while data := fh.read(CHUNK):
            yield data


def _signed_url(blob: Any, target: downloadables.Target) -> str | None:
    """A V4 signed URL, signed through IAM as the function's own service account."""
    try:
        creds = instance.gcs()._credentials
        if not creds.valid:
            creds.refresh(auth_requests.Request())
        url: str = blob.generate_signed_url(
            version="v4",
            expiration=SIGNED_URL_TTL,
            method="GET",
            service_account_email=getattr(creds, "service_account_email", None),
            access_token=creds.token,
            response_disposition=f'attachment; filename="{target.filename}"',
        )
        return url
    except Exception as exc:  # no signer (e.g. user credentials): stream instead
        log.warning("could not sign a URL (%s); streaming the object", exc)
        return None


def _error(exc: AletheiaError) -> flask.Response:
    status = 400
    if isinstance(exc, UnauthenticatedError):
        status = 401
    elif isinstance(exc, AccessDeniedError):
        status = 403
    elif isinstance(exc, NotFoundError):
        status = 404
    elif isinstance(exc, BackendUnavailableError):
        status = 503
    return _json({"error": exc.message, "hint": exc.hint}, status)


def _json(body: dict[str, Any], status: int) -> flask.Response:
    return flask.Response(flask.json.dumps(body), status=status, mimetype="application/json")


def allowed_origin(origin: str | None) -> bool:
    """Loopback (``aletheia ui``) and the configured dashboard origins."""
    if not origin:
        return False
    configured = {o.strip().rstrip("/") for o in os.environ.get(ORIGINS_ENV, "").split(",")}
    if origin.rstrip("/") in configured - {""}:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK


def _cors(resp: flask.Response, origin: str | None) -> flask.Response:
    if allowed_origin(origin):
        resp.headers["Access-Control-Allow-Origin"] = str(origin)
        resp.headers["Vary"] = "Origin"
        resp.headers["Access-Control-Allow-Methods"] = "GET, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = "Authorization"
        resp.headers["Access-Control-Expose-Headers"] = "Content-Disposition, Content-Length"
        resp.headers["Access-Control-Max-Age"] = "3600"
    return resp
