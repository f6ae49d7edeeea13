"""The web dashboard: a static single-page app (built from ``web/``) and its local server.

The app talks to Firestore and Firebase Auth directly with the Firebase JS
SDK, under ``firestore.rules``; nothing of ours runs between the browser and
the data. This package only ships the built files (``dist/``, made by
``make web``) and serves them with a generated ``config.json``.
"""

from aletheia.webui.server import app_config, dist_dir, serve, url_of

__all__ = ["app_config", "dist_dir", "serve", "url_of"]
