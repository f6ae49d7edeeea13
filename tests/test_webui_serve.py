"""``aletheia ui``: the built dashboard served without Node, with the config it needs.

Also checks the one property the dashboard's read counter rests on: every
Firestore read goes through web/src/fb.ts.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from aletheia.cloud import config
from aletheia.devstack import local
from aletheia.errors import ConfigError, LocalStackError
from aletheia.webui import server

from helpers import GENEROUS_S, wait_for

WEB_SRC = Path(__file__).resolve().parents[1] / "web" / "src"
#: The Firebase SDK's functions that read documents (and so cost reads).
READ_FUNCTIONS = (
    "getDoc",
    "getDocs",
    "getDocFromServer",
    "getDocsFromServer",
    "onSnapshot",
    "getCountFromServer",
    "getAggregateFromServer",
)


def test_config_points_the_app_at_the_local_stack(settings: config.Settings) -> None:
    cfg = server.app_config(settings)
    assert cfg["projectId"] == settings.cloud_project
    assert cfg["firestoreEmulator"] == settings.firestore_emulator_host
    assert cfg["authEmulator"] == settings.auth_emulator_host
    assert cfg["apiKey"]
    # The download function the stack serves (the run page's diff and artifacts).
    assert (
        cfg["downloadsUrl"]
        == f"http://{local.load_state(settings.stack_dir).parts['downloads'].address}/"
    )
    assert requests.get(cfg["downloadsUrl"], timeout=GENEROUS_S).status_code == 401


def test_a_stack_without_the_auth_emulator_is_a_clear_error(settings: config.Settings) -> None:
    no_auth = dataclasses.replace(settings, auth_emulator_host=None)
    with pytest.raises(LocalStackError, match="no Firebase Auth emulator") as info:
        server.app_config(no_auth)
    assert "--auth" in (info.value.hint or "")


def test_the_cloud_needs_the_web_api_key(settings: config.Settings) -> None:
    cloud = dataclasses.replace(settings, mode="cloud", firebase_api_key=None)
    with pytest.raises(ConfigError, match="web API key") as info:
        server.app_config(cloud)
    assert "terraform output -raw firebase_api_key" in (info.value.hint or "")


def test_aletheia_ui_serves_the_app_and_its_config(
    stack_state: local.StackState, settings: config.Settings
) -> None:
    port = local.free_ports()["firestore"]  # any free port
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("aletheia")), "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Dashboard: http://127.0.0.1:PORT/ ..." once listening
        assert f"http://127.0.0.1:{port}/" in line
        index = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert index.status_code == 200 and "<title>aletheia</title>" in index.text
        scripts = re.findall(r'src="\./(assets/[^"]+\.js)"', index.text)
        assert scripts and all(
            requests.get(f"http://127.0.0.1:{port}/{s}", timeout=10).status_code == 200
            for s in scripts
        )
        cfg = wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/config.json", timeout=10))
        assert cfg.json()["firestoreEmulator"] == settings.firestore_emulator_host
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_every_firestore_read_goes_through_the_counting_module() -> None:
    imports = re.compile(r"import\s*\{([^}]*)\}\s*from\s*\"firebase/firestore\"")
    seen, offenders = set(), []
    for path in sorted(WEB_SRC.rglob("*.ts")):
        names = {
            n.strip().removeprefix("type ").split(" as ")[0].strip()
            for block in imports.findall(path.read_text(encoding="utf-8"))
            for n in block.split(",")
        }
        seen |= names
        if path.name != "fb.ts":
            offenders += [f"{path.name}: {fn}" for fn in READ_FUNCTIONS if fn in names]
    assert offenders == []
    assert {"getDoc", "getDocs", "onSnapshot"} <= seen  # the check does see fb.ts's imports
