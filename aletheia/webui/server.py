"""Serve the built dashboard on localhost, with the config it needs to find Firebase.

The app is static: ``index.html`` and its assets from ``dist/`` (package
data), plus ``config.json`` generated here from the same settings every
other aletheia client resolves (:mod:`aletheia.cloud.config`): the Firebase
project id, the web API key, and the emulator hosts when the target is the
local stack. No Node is needed to serve it; only to build it (``make web``).
"""

from __future__ import annotations

import functools
import json
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from aletheia.cloud.auth import EMULATOR_API_KEY
from aletheia.cloud.config import Settings, read_stack_state
from aletheia.errors import ConfigError, LocalStackError

#: Where ``make web`` puts the build, inside the package so wheels carry it.
DIST = "dist"
CONFIG_PATH = "/config.json"


def dist_dir() -> Path:
    """The built app's directory; :class:`ConfigError` saying how to build it if absent."""
    path = Path(str(resources.files("aletheia.webui") / DIST))
    if not (path / "index.html").is_file():
        raise ConfigError(
            f"the dashboard is not built ({path / 'index.html'} is missing)",
            "build it with `make web` (needs Node.js >= 20 and npm), "
            "or install a released aletheia wheel, which ships it",
        )
    return path


def app_config(settings: Settings) -> dict[str, Any]:
    """What the browser app needs to reach Firebase: ``config.json``.

    Locally the emulators need the Auth emulator too (the app signs users
    in); in the cloud the project's web API key (``terraform output -raw
    firebase_api_key``).
    """
    if settings.uses_emulators:
        if not settings.firestore_emulator_host:
            raise LocalStackError(
                "firestore",
                "no local stack is running (no Firestore emulator host)",
                "start it with `aletheia local up --auth`",
            )
        if not settings.auth_emulator_host:
            raise LocalStackError(
                "auth",
                "the local stack runs no Firebase Auth emulator: nobody could sign in",
                "restart it with `aletheia local down` and `aletheia local up --auth`",
            )
        return {
            "projectId": settings.cloud_project,
            "apiKey": settings.firebase_api_key or EMULATOR_API_KEY,
            "authDomain": f"{settings.cloud_project}.firebaseapp.com",
            "firestoreEmulator": settings.firestore_emulator_host,
            "authEmulator": settings.auth_emulator_host,
            "defaultProject": settings.project,
            "downloadsUrl": stack_downloads_url(settings),
        }
    if not settings.firebase_api_key:
        raise ConfigError(
            "the dashboard needs the Firebase project's web API key",
            "set ALETHEIA_FIREBASE_API_KEY to `terraform output -raw firebase_api_key`",
        )
    return {
        "projectId": settings.cloud_project,
        "apiKey": settings.firebase_api_key,
        "authDomain": f"{settings.cloud_project}.firebaseapp.com",
        "firestoreEmulator": None,
        "authEmulator": None,
        "defaultProject": settings.project,
        "downloadsUrl": settings.downloads_url,
    }


def stack_downloads_url(settings: Settings) -> str | None:
    """The local stack's download function (its state file), or ``None`` if it runs none.

    Locally only the stack's own function will do: it is the one that accepts the
    Auth emulator's unsigned tokens, so a cloud URL left in the environment is ignored.
    """
    part = (read_stack_state(settings.stack_dir).get("parts") or {}).get("downloads") or {}
    address = part.get("address") if isinstance(part, dict) else None
    return f"http://{address}/" if isinstance(address, str) and address else None


class _Handler(SimpleHTTPRequestHandler):
    """Static files from ``dist/``; ``/config.json`` from memory."""

    config_body: bytes = b"{}"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == CONFIG_PATH:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(self.config_body)))
            self.end_headers()
            self.wfile.write(self.config_body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a dashboard page loads a dozen assets."""


def make_server(settings: Settings, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A bound (not yet serving) HTTP server of the app; ``port=0`` picks a free one."""
    root = dist_dir()
    body = json.dumps(app_config(settings)).encode()
    handler = type("Handler", (_Handler,), {"config_body": body})
    try:
        return ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(root)))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}", "choose another --port"
        ) from exc


def url_of(server: ThreadingHTTPServer) -> str:
    """The address a browser opens."""
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/"


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve the app from a daemon thread (embedding, tests); stop it with ``shutdown()``."""
    server = make_server(settings, host, port)
    threading.Thread(target=server.serve_forever, name="aletheia-ui", daemon=True).start()
    return server
