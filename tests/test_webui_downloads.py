"""A run's dirty diff and artifacts from the dashboard, through the download function.

Cloud Storage does not take Firebase ID tokens, so the dashboard fetches these
through the HTTP function the local stack serves (``functions/main.py:download``,
run by functions-framework). A member sees the diff on the run page and downloads
an artifact byte for byte in a real browser; the function itself, asked directly
with real Auth emulator tokens, refuses an outsider (403), a caller without a
token (401) and anything the run does not record (404).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect
from test_webui import PASSWORD, as_owner, sign_in

from aletheia.cloud import auth, config
from aletheia.function import downloads
from aletheia.tracking.metastore import Metastore
from aletheia.webui import server

from helpers import GENEROUS_S

# The fixtures of the dashboard's browser tests (pytest finds them in this module's namespace).
from test_webui import browser, page, ui_url, web  # noqa: F401  isort: skip

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}
EDIT = "learning_rate = 0.3  # tried on a dirty tree\n"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=GIT_ENV)


@pytest.fixture()
def dirty_repo(tmp_path: Path) -> Path:
    """A repository with one commit and an uncommitted edit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("learning_rate = 0.1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    (repo / "train.py").write_text(EDIT)
    return repo


class Saved:
    """A member's run: its id, the member's ID token, the artifact's bytes."""

    def __init__(self, run_id: str, token: str, data: bytes) -> None:
        self.run_id, self.token, self.data = run_id, token, data


def _member_run(settings: config.Settings, repo: Path, tmp_path: Path) -> Saved:
    grant = auth.toolkit_for(settings).sign_up("ana@example.com", PASSWORD)
    model = tmp_path / "model.bin"
    data = os.urandom(300_000) + b"\x00\xff end"
    model.write_bytes(data)
    exper = Metastore("vision", settings=as_owner(settings, grant.uid)).exper("dl")
    with exper.start_run(git_policy="warn", repo_path=repo) as run:
        run.add_artifact("model", model)
    return Saved(run.id, grant.id_token, data)


def _url(settings: config.Settings) -> str:
    """The download function's URL, as the dashboard's config.json gives it."""
    url = server.app_config(settings)["downloadsUrl"]
    assert url, "the local stack runs no download function"
    return str(url)


def _ask(settings: config.Settings, token: str | None, **params: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(_url(settings), params=params, headers=headers, timeout=GENEROUS_S)


def test_a_member_sees_the_dirty_diff_and_downloads_an_artifact_byte_for_byte(
    web: config.Settings,  # noqa: F811
    page: Page,  # noqa: F811
    ui_url: str,  # noqa: F811
    dirty_repo: Path,
    tmp_path: Path,
) -> None:
    saved = _member_run(web, dirty_repo, tmp_path)
    sign_in(page, ui_url, "ana@example.com")
    page.goto(f"{ui_url}#/p/vision/e/dl/r/{saved.run_id}")
    diff = page.locator("[data-testid=diff-text]")
    expect(diff).to_contain_text("+learning_rate = 0.3  # tried on a dirty tree")
    expect(diff).to_contain_text("-learning_rate = 0.1")
    link = page.locator("[data-testid=artifacts] a[data-file='model.bin']")
    with page.expect_download(timeout=GENEROUS_S * 1000) as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "model.bin"
    assert Path(download.path()).read_bytes() == saved.data
    with page.expect_download(timeout=GENEROUS_S * 1000) as info:
        page.click("[data-testid=diff-download]")
    assert "+" + EDIT in Path(info.value.path()).read_text()
    with page.expect_download(timeout=GENEROUS_S * 1000) as info:
        page.click("[data-testid=packages-download]")
    assert "requests==" in Path(info.value.path()).read_text().lower()


def test_the_diff_on_the_page_is_cut_at_its_cap_and_says_so(
    web: config.Settings,  # noqa: F811
    page: Page,  # noqa: F811
    ui_url: str,  # noqa: F811
    dirty_repo: Path,
    tmp_path: Path,
) -> None:
    (dirty_repo / "big.py").write_text("x = 1\n")
    _git(dirty_repo, "add", "big.py")
    _git(dirty_repo, "commit", "-qm", "big")
    (dirty_repo / "big.py").write_text("".join(f"x_{i} = {i}\n" for i in range(40_000)))
    saved = _member_run(web, dirty_repo, tmp_path)
    sign_in(page, ui_url, "ana@example.com")
    page.goto(f"{ui_url}#/p/vision/e/dl/r/{saved.run_id}")
    expect(page.locator("[data-testid=diff-cut]")).to_contain_text("Showing the first 200,000 of")
    shown = page.locator("[data-testid=diff-text]").text_content() or ""
    assert 0 < len(shown.encode()) <= 200_000


def test_the_download_function_refuses_outsiders_callers_without_a_token_and_unrecorded_files(
    web: config.Settings,  # noqa: F811
    dirty_repo: Path,
    tmp_path: Path,
) -> None:
    saved = _member_run(web, dirty_repo, tmp_path)
    run = {"project": "vision", "experiment": "dl", "run": saved.run_id}
    model = {**run, "object": "artifact", "name": "model", "version": "v1", "path": "model.bin"}
    # The member: the diff and the artifact's bytes, streamed from the bucket.
    diff = _ask(web, saved.token, **run, object="diff")
    assert diff.status_code == 200, diff.text
    assert "+" + EDIT in diff.text
    got = _ask(web, saved.token, **model)
    assert got.status_code == 200, got.text
    assert got.content == saved.data
    packages = _ask(web, saved.token, **run, object="packages")
    assert packages.status_code == 200 and "requests==" in packages.text.lower(), packages.text
    listing = _ask(web, saved.token, **{k: v for k, v in model.items() if k != "path"})
    assert [f["path"] for f in listing.json()["files"]] == ["model.bin"]

    # A real Auth emulator user who is no member of the project.
    outsider = auth.toolkit_for(web).sign_up("eve@example.com", PASSWORD).id_token
    for params in (model, {**run, "object": "diff"}):
        refused = _ask(web, outsider, **params)
        assert refused.status_code == 403, refused.text
        assert "not a member" in refused.json()["error"]
        assert saved.data not in refused.content
    # ... nor of a project that does not exist (saying so would tell which exist).
    assert _ask(web, outsider, **{**model, "project": "nobody-has-this"}).status_code == 403

    # No token, a garbage one, one for another Firebase project: 401.
    assert _ask(web, None, **model).status_code == 401
    assert _ask(web, "not-a-jwt", **model).status_code == 401
    assert _ask(web, _unsigned_token(saved.token, aud="someone-else"), **model).status_code == 401

    # Anything the run does not record: 404, whatever the member asks for.
    for params in (
        {**model, "path": "../../other-project/sha256/ab/" + "c" * 62},
        {**model, "path": "weights.bin"},
        {**model, "version": "v2"},
        {**model, "name": "tokenizer"},
        {**run, "object": "packages", "run": "999"},
    ):
        missing = _ask(web, saved.token, **params)
        assert missing.status_code == 404, (params, missing.text)
        assert missing.json()["error"]


def test_the_download_function_lets_the_dashboard_origin_send_a_token(
    web: config.Settings,  # noqa: F811
    ui_url: str,  # noqa: F811
) -> None:
    origin = "/".join(ui_url.split("/")[:3])
    pre = requests.options(
        _url(web),
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=GENEROUS_S,
    )
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == origin
    assert "authorization" in pre.headers["Access-Control-Allow-Headers"].lower()
    elsewhere = requests.options(
        _url(web), headers={"Origin": "https://evil.example"}, timeout=GENEROUS_S
    )
    assert "Access-Control-Allow-Origin" not in elsewhere.headers


def _unsigned_token(token: str, **changes: object) -> str:
    """The emulator's token with some claims changed (it is unsigned, so anyone can)."""
    header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update({"exp": int(time.time()) + 600, **changes})
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{body}."


def test_unsigned_tokens_are_taken_only_when_the_auth_emulator_is_configured() -> None:
    now = int(time.time())
    claims = {
        "aud": "demo-proj",
        "iss": "https://securetoken.google.com/demo-proj",
        "sub": "mallory",
        "iat": now,
        "exp": now + 600,
    }
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    forged = "Bearer " + _unsigned_token(f"{header}.e30.", **claims)
    cloud = config.resolve({"mode": "cloud", "cloud_project": "demo-proj"})
    emulated = dataclasses.replace(cloud, mode="local", auth_emulator_host="127.0.0.1:9099")
    assert downloads.verify_token(forged, emulated) == "mallory"
    for settings in (cloud, dataclasses.replace(emulated, auth_emulator_host=None)):
        with pytest.raises(downloads.UnauthenticatedError, match="RS256"):
            downloads.verify_token(forged, settings)
