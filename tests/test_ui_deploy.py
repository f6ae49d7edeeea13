"""`aletheia ui deploy` and terraform's Hosting site, checked offline: what a deploy would
upload (every file of the build plus the cloud config.json, gzip'd, with the hashes
Firebase Hosting's populateFiles expects) and the terraform that creates the site and
lets the dashboard sign users in (email/password, and Google once an OAuth client is set).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from test_terraform import tf  # noqa: F401  (the parsed terraform/ fixture)

from aletheia.cloud import config
from aletheia.errors import ConfigError
from aletheia.webui import hosting, server


def _cloud(**extra: str) -> config.Settings:
    return config.resolve(
        {"mode": "cloud", "cloud_project": "demo-proj", "firebase_api_key": "web-key", **extra}
    )


def _build(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><script src=./assets/a.js></script>")
    (root / "assets" / "a.js").write_text("console.log(1)")
    (root / "assets" / "a.css").write_bytes(b"body{}")
    return root


def test_a_deploy_uploads_every_built_file_and_the_cloud_config(tmp_path: Path) -> None:
    upload = hosting.plan(_cloud(), _build(tmp_path / "dist"))
    assert sorted(upload.files) == ["/assets/a.css", "/assets/a.js", "/config.json", "/index.html"]
    assert gzip.decompress(upload.files["/assets/a.js"]) == b"console.log(1)"
    # populateFiles wants the SHA-256 of the gzip'd bytes, hex, per path.
    for path, digest in upload.hashes.items():
        assert digest == hashlib.sha256(upload.files[path]).hexdigest()
    cfg = json.loads(gzip.decompress(upload.files["/config.json"]))
    assert cfg == server.app_config(_cloud())
    assert cfg["projectId"] == "demo-proj" and cfg["apiKey"] == "web-key"
    assert cfg["firestoreEmulator"] is None and cfg["authEmulator"] is None
    # Hashed assets cache for a year; the page and its config never go stale.
    globs = {h["glob"]: h["headers"]["Cache-Control"] for h in upload.config["headers"]}
    assert "immutable" in globs["/assets/**"]
    assert globs["/index.html"] == globs["/config.json"] == "no-cache"


def test_unchanged_files_hash_the_same_so_a_redeploy_uploads_only_changes(
    tmp_path: Path,
) -> None:
    root = _build(tmp_path / "dist")
    first = hosting.plan(_cloud(), root).hashes
    (root / "assets" / "b.js").write_text("console.log(2)")
    second = hosting.plan(_cloud(), root).hashes
    assert {p: h for p, h in second.items() if p != "/assets/b.js"} == first


def test_the_built_app_is_what_a_deploy_sends() -> None:
    upload = hosting.plan(_cloud())
    built = {p for p in upload.files if p != "/config.json"}
    dist = server.dist_dir()
    assert built == {"/" + f.relative_to(dist).as_posix() for f in dist.rglob("*") if f.is_file()}
    assert "/index.html" in built and any(p.startswith("/assets/") for p in built)


def test_a_deploy_refuses_the_local_stack_a_missing_key_and_a_bad_site(tmp_path: Path) -> None:
    root = _build(tmp_path / "dist")
    with pytest.raises(ConfigError, match="local stack"):
        hosting.plan(config.resolve({"mode": "local"}), root)
    with pytest.raises(ConfigError, match="web API key"):
        hosting.plan(config.resolve({"mode": "cloud", "cloud_project": "demo-proj"}), root)
    assert hosting.site_id(_cloud(), None) == "demo-proj-aletheia"
    assert hosting.site_id(_cloud(), "my-dash") == "my-dash"
    with pytest.raises(ConfigError, match="site id"):
        hosting.site_id(_cloud(), "Bad_Site")


def test_terraform_creates_the_hosting_site_the_deploy_uses(tf: dict[str, Any]) -> None:  # noqa: F811
    site = tf["resource"]["google_firebase_hosting_site.dashboard"]
    assert "google-beta" in str(site["provider"])
    assert site["site_id"] == "${local.hosting_site_id}"
    assert '"${var.project_id}-aletheia"' in tf["locals"]["hosting_site_id"]
    assert tf["output"]["hosting_site"]["value"].endswith("dashboard.site_id}")
    services = tf["locals"]["services"]
    assert "firebase.googleapis.com" in services and "firebasehosting.googleapis.com" in services
    auth = tf["resource"]["google_identity_platform_config.auth"]
    assert "${local.hosting_site_id}.web.app" in auth["authorized_domains"]
    assert "localhost" in auth["authorized_domains"]


def test_google_sign_in_is_enabled_once_an_oauth_client_is_given(tf: dict[str, Any]) -> None:  # noqa: F811
    google = tf["resource"]["google_identity_platform_default_supported_idp_config.google"]
    assert google["idp_id"] == "google.com" and google["enabled"] is True
    assert google["count"] == '${var.google_oauth_client_id == "" ? 0 : 1}'
    assert tf["variable"]["google_oauth_client_secret"]["sensitive"] is True


def test_the_cloud_config_names_the_download_function() -> None:
    url = "https://europe-west1-demo-proj.cloudfunctions.net/aletheia-profile-download"
    assert server.app_config(_cloud(downloads_url=url))["downloadsUrl"] == url
    assert server.app_config(_cloud())["downloadsUrl"] is None  # the page says none is deployed
