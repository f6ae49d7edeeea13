"""Test fixtures: one real local stack per test session, wiped between tests.

Nothing here mocks Firestore or Cloud Storage: the stack is the same one
``aletheia local up --auth`` starts (gcloud's Firestore and Pub/Sub
emulators, fake-gcs-server, functions-framework, the event bridge and the
Firebase Auth emulator), on free ports in
a temporary directory so parallel sessions never collide. Set
``ALETHEIA_TEST_STACK_DIR`` to a running stack's dir to reuse it instead
(faster edit-test loops); it is then left running.
"""

from __future__ import annotations

# isort: off
# aletheia first, as a training script would import it: it turns gRPC's fork handlers
# off, which works only before gRPC is loaded (the Spark tests' Java gateway is a forked
# subprocess of this process; see aletheia/__init__.py).
import aletheia  # noqa: F401
# isort: on

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from google.cloud import firestore, storage

from aletheia.cloud import clients, config
from aletheia.devstack import local

from helpers import GENEROUS_S, PrivateFirestore, wait_function_idle

#: The test files that keep one worker busiest (their setup, call and teardown summed over
#: a `--durations=0` run on 2 cores), longest first. ``make test`` runs xdist with
#: ``--dist loadfile --no-loadscope-reorder``, which hands whole files to the workers in
#: collection order: with these first, the long files start at once and the many short
#: ones fill in behind them, instead of one long file starting last while the other
#: worker idles. Only the order changes; a file missing here still runs (after these).
LONGEST_FIRST = (
    "test_bench_quick.py",
    "test_terraform.py",
    "test_faults_reconnect.py",
    "test_clear_errors.py",
    "test_local_stack.py",
    "test_spark.py",
    "test_run_exit.py",
    "test_offline_start.py",
    "test_rules.py",
    "test_rules_invites.py",
    "test_mlflow.py",
    "test_faults.py",
    "test_datasets_quickadd.py",
    "test_auth.py",
    "test_poisoned_inputs.py",
    "test_faults_journal.py",
    "test_read_api.py",
    "test_rules_models.py",
    "test_datasets.py",
    "test_webui.py",
    "test_mlflow_programs.py",
    "test_rejections.py",
    "test_profiling_truth.py",
    "test_env_reproduce.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files of :data:`LONGEST_FIRST` first, in that order (a stable sort: the tests
    of each file keep their order, and the other files theirs)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


# Variables that would point tests at a user's real project or config.
_ISOLATE = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "FIRESTORE_EMULATOR_HOST",
    "STORAGE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST",
    *(v for names in config.ENV_VARS.values() for v in names),
)


@pytest.fixture(scope="session")
def stack_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.StackState]:
    """A healthy local stack for the whole session (started here unless reused)."""
    reuse = os.environ.get("ALETHEIA_TEST_STACK_DIR")
    for var in _ISOLATE:
        os.environ.pop(var, None)
    home = tmp_path_factory.mktemp("home")
    os.environ["ALETHEIA_CONFIG"] = str(home / "no-config.toml")
    # Nobody is signed in unless a test signs in (into a file of its own).
    os.environ["ALETHEIA_USER_CREDENTIALS"] = str(home / "nobody-signed-in.json")
    if reuse:
        state = local.load_state(Path(reuse))
        if state is None or any(v != "healthy" for v in local.status(Path(reuse)).values()):
            pytest.fail(f"ALETHEIA_TEST_STACK_DIR={reuse} is not a healthy stack")
        stack_dir = Path(reuse)
    else:
        stack_dir = tmp_path_factory.mktemp("stack")
        # The function sweeps stale leases after every data-file event, not once a
        # minute: a test leaves a dead worker's file and waits for the next event to
        # finish it (the started function inherits this environment).
        os.environ["ALETHEIA_SWEEP_EVERY_S"] = "0"
        # No periodic saves: every test wipes what the one before wrote, and the stack's
        # data goes with it at the end, so the saver would only export in a loop.
        cfg = local.StackConfig(
            stack_dir=stack_dir, ports=local.free_ports(), auth=True, export_interval_s=0
        )
        state = local.up(cfg, echo=lambda _msg: None)
    os.environ["ALETHEIA_STACK_DIR"] = str(stack_dir)
    # Child processes (CLI runs, training scripts) see the same stack.
    os.environ.update(state.env)
    os.environ["ALETHEIA_CACHE_DIR"] = str(home / "cache")
    yield state
    if not reuse:
        local.down(stack_dir, keep_data=False, echo=lambda _msg: None)


@pytest.fixture(scope="session")
def settings(stack_state: local.StackState) -> config.Settings:
    """Settings resolved exactly as a user's process would resolve them."""
    return config.resolve()


@pytest.fixture(scope="session")
def db(settings: config.Settings) -> firestore.Client:
    """A Firestore client on the emulator."""
    return clients.firestore_client(settings)


@pytest.fixture(scope="session")
def gcs(settings: config.Settings) -> storage.Client:
    """A Cloud Storage client on fake-gcs-server."""
    return clients.storage_client(settings)


@pytest.fixture()
def stack(settings: config.Settings, db: firestore.Client, gcs: storage.Client) -> config.Settings:
    """A wiped stack: no documents in Firestore, no objects in the bucket."""
    wipe_stack(settings, gcs)
    return settings


@pytest.fixture(scope="module")
def module_stack(settings: config.Settings, gcs: storage.Client) -> config.Settings:
    """A stack wiped once for the module, for tests that share what one expensive set-up
    wrote (they only read it or add beside it; none of them requests ``stack``)."""
    wipe_stack(settings, gcs)
    return settings


def wipe_stack(settings: config.Settings, gcs: storage.Client) -> None:
    """No documents in Firestore, no objects in the bucket.

    First the storage function finishes the event it is working on: the last test's
    upload may still be being profiled, and its records and sample, written after the
    wipe, would be found by the next test.
    """
    wait_function_idle(settings)
    wipe_firestore(settings)
    for blob in gcs.bucket(settings.bucket).list_blobs():
        blob.delete()


def wipe_firestore(settings: config.Settings) -> None:
    """Delete every document through the emulator's reset endpoint."""
    url = (
        f"http://{settings.firestore_emulator_host}/emulator/v1/projects/"
        f"{settings.cloud_project}/databases/(default)/documents"
    )
    # A loaded machine is slow, not broken: a generous ceiling.
    requests.delete(url, timeout=GENEROUS_S).raise_for_status()


@pytest.fixture(scope="module")
def private_firestore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateFirestore]:
    """A Firestore emulator of the module's own, started once: the module's fault tests
    freeze, stop and restart it, and each takes it back healthy and empty with ``fresh()``."""
    private = PrivateFirestore(tmp_path_factory.mktemp("private-firestore"))
    yield private
    private.close()


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    """An empty local cache for one test."""
    path = tmp_path / "cache"
    path.mkdir()
    return path


@pytest.fixture(scope="session", autouse=True)
def _require_tools() -> None:
    """Fail (never skip) with what to install when a stack prerequisite is missing."""
    missing = [tool for tool in ("gcloud", "java", "git") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing on PATH: {', '.join(missing)} (see README 'Requirements')")
