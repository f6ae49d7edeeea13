"""The Metastore API of the original README, end to end against the emulators."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
from pathlib import Path

import pytest
from google.cloud import firestore

from aletheia.cloud import config, layout
from aletheia.errors import ValidationError
from aletheia.tracking.metastore import Metastore
from aletheia.tracking.runmodel import effective_status

from helpers import wait_for

PROJECT = "alethea-fcf82"


def git_repo(path: Path) -> Path:
    """A real repository with one commit."""
    path.mkdir(parents=True, exist_ok=True)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "train.py").write_text("print('hi')\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(
        ["git", "-C", str(path), "commit", "-qm", "init"],
        check=True,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    return path


def run_doc(db: firestore.Client, exper: str, run: str) -> dict:
    return db.document(layout.run(PROJECT, exper, run)).get().to_dict() or {}


def test_readme_example_records_every_field(
    stack: config.Settings, db: firestore.Client, tmp_path: Path, cache_dir: Path
) -> None:
    from aletheia.data.datasets import DatasetStore

    repo = git_repo(tmp_path / "repo")
    (repo / "train.py").write_text("print('changed')\n")  # dirty: the diff becomes a blob
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("x,y\n1,2\n")
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    DatasetStore(ms.db, ms.blobstore, ms.cache, PROJECT).add("ds_name", data, lock=False)

    # The README example, typos fixed.
    ms.set_downloader(cache_dir)
    exper = ms.exper("exper Name", debug=False, auto_inc_ids=True)
    exper.desc = "Description / notes etc"
    with exper.start_run(fold=1, repo_path=repo) as run:
        run.set_fold()
        ds = run.get_dataset("ds_name", download=True)
        assert ds.local_path is not None
        assert (Path(ds.local_path) / "train.csv").read_text() == "x,y\n1,2\n"
        run.set_model("mlp")
        run.set_hyper_params({"lr": 0.1, "layers": [64, 32], "opt": {"name": "sgd"}})
        run.set_params({"seed": 7})
        weights = tmp_path / "weights"
        weights.mkdir()
        (weights / "w.bin").write_bytes(b"\x00" * 100)
        exper.add_artifact("model", weights, is_local=True, is_dir=True, upload_file=True)
        for step in range(5):
            exper.add_metric("train/loss", 1.0 / (step + 1))
        run.log_metrics({"val.acc": 0.5, "val/loss": 0.7}, step=4)

    assert run.id == "1"
    exp_doc = db.document(layout.experiment(PROJECT, "exper Name")).get().to_dict()
    assert exp_doc["desc"] == "Description / notes etc"
    assert exp_doc["next_run_id"] == 2
    doc = run_doc(db, "exper Name", "1")
    assert doc["status"] == "finished"
    assert doc["fold"] == 1
    assert doc["model"] == {"name": "mlp"}
    assert doc["hyper_params"] == {"lr": 0.1, "layers": [64, 32], "opt": {"name": "sgd"}}
    assert doc["params"] == {"seed": 7}
    for field in ("started_at", "ended_at", "heartbeat_at"):
        assert isinstance(doc[field], dt.datetime), field
    assert doc["ended_at"] >= doc["started_at"]
    assert doc["git"]["in_repo"] is True and doc["git"]["dirty"] is True
    assert doc["git"]["branch"] == "main" and len(doc["git"]["commit"]) == 40
    assert doc["git"]["diff_ref"]["uri"].startswith("gs://")
    diff = ms.blobstore.get_bytes(doc["git"]["diff_ref"]["sha256"]).decode()
    assert "+print('changed')" in diff
    assert doc["env"]["python"]
    packages = ms.blobstore.get_bytes(doc["env"]["packages_ref"]["sha256"]).decode()
    assert "google-cloud-firestore==" in packages.lower()
    assert doc["datasets"] == [{"name": "ds_name", "version": ds.version}]
    assert doc["dataset_refs"] == [layout.dataset_ref("ds_name", ds.version)]
    loss = doc["summary"]["train/loss"]
    assert loss == {
        "count": 5, "last": 0.2, "last_step": 4, "min": 0.2, "max": 1.0, "nonfinite": 0
    }  # fmt: skip
    assert doc["summary"]["val.acc"]["last"] == 0.5  # a dot in a metric name is kept
    chunk = db.document(layout.metric_chunk(PROJECT, "exper Name", "1", "train/loss", 0)).get()
    assert chunk.get("steps") == [0, 1, 2, 3, 4]
    assert chunk.get("values") == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert all(isinstance(t, dt.datetime) for t in chunk.get("times"))
    artifact = db.document(layout.artifact(PROJECT, "exper Name", "model")).get()
    assert artifact.exists
    assert doc["artifacts"] == [{"name": "model", "version": "v1"}]
    saved = exper.get_artifact("model")
    assert [f.path for f in saved.files] == ["w.bin"] and saved.run == "1"
    result = db.document(layout.result(PROJECT, "exper Name", "1")).get().to_dict()
    assert result["metrics"] == {"train/loss": 0.2, "val.acc": 0.5, "val/loss": 0.7}
    assert result["status"] == "finished" and result["fold"] == 1 and result["model"] == "mlp"


def test_run_ids_count_up_and_time_ids_sort(stack: config.Settings, tmp_path: Path) -> None:
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    exper = ms.exper("numbered", git_policy="off")
    ids = []
    for _ in range(3):
        with exper.start_run() as run:
            ids.append(run.id)
    assert ids == ["1", "2", "3"]
    timed = ms.exper("timed", auto_inc_ids=False, git_policy="off")
    with timed.start_run() as a, timed.start_run() as b:
        pass
    assert a.id != b.id
    assert len(a.id) == len("20261123T101500-ab12cd") and a.id[8] == "T"
    assert a.id[:15] <= b.id[:15]


def test_exception_marks_run_failed_with_traceback(
    stack: config.Settings, db: firestore.Client
) -> None:
    exper = Metastore(PROJECT, flush_interval_s=0.2).exper("failing", git_policy="off")
    with pytest.raises(ZeroDivisionError), exper.start_run(fold=2) as run:
        run.add_metric("loss", 1.0)
        _ = 1 / 0
    doc = run_doc(db, "failing", run.id)
    assert doc["status"] == "failed"
    assert "ZeroDivisionError" in doc["error"] and "Traceback" in doc["error"]
    assert doc["summary"]["loss"]["count"] == 1
    with pytest.raises(ValidationError, match="has ended"):
        run.add_metric("loss", 2.0)


def test_nonfinite_values_are_stored_and_flagged(
    stack: config.Settings, db: firestore.Client
) -> None:
    exper = Metastore(PROJECT, flush_interval_s=0.2).exper("nan", git_policy="off")
    with exper.start_run() as run:
        for v in (1.0, math.nan, math.inf, -math.inf, 0.5):
            run.add_metric("loss", v)
    doc = run_doc(db, "nan", run.id)
    assert doc["summary"]["loss"]["nonfinite"] == 3
    assert (doc["summary"]["loss"]["min"], doc["summary"]["loss"]["max"]) == (0.5, 1.0)
    values = db.document(layout.metric_chunk(PROJECT, "nan", run.id, "loss", 0)).get()
    stored = values.get("values")
    assert stored[0] == 1.0 and math.isnan(stored[1]) and stored[2:4] == [math.inf, -math.inf]


def test_bad_input_is_refused_before_any_write(
    stack: config.Settings, db: firestore.Client
) -> None:
    ms = Metastore(PROJECT, flush_interval_s=0.2)
    with pytest.raises(ValidationError, match="slash"):
        ms.exper("a/b")
    with pytest.raises(ValidationError):
        Metastore("..")
    exper = ms.exper("bad input", git_policy="off")
    huge = {"blob": "x" * (1024 * 1024 + 1)}
    with pytest.raises(ValidationError, match="split the params"):
        exper.start_run(params=huge)
    assert list(db.collection(layout.runs(PROJECT, "bad input")).stream()) == []
    with exper.start_run() as run:
        for bad in ("0.5", None, [1.0], True, 1 + 2j):
            with pytest.raises(ValidationError):
                run.add_metric("loss", bad)
        with pytest.raises(ValidationError):
            run.add_metric("", 1.0)
        with pytest.raises(ValidationError):
            run.log_metrics({"ok": 1.0, "bad": "x"})  # all-or-nothing
        with pytest.raises(ValidationError, match="split the params"):
            run.set_hyper_params(huge)
        with pytest.raises(ValidationError):
            run.add_metric("loss", 1.0, step=-1)
        run.add_metric("loss", 2.0)
    doc = run_doc(db, "bad input", run.id)
    assert doc["hyper_params"] == {}
    assert set(doc["summary"]) == {"loss"}
    assert doc["summary"]["loss"]["count"] == 1
    with pytest.raises(ValidationError, match="active run"):
        exper.add_metric("loss", 1.0)


def test_stale_heartbeat_reads_as_crashed() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    doc = {"status": "running", "heartbeat_at": t0, "heartbeat_interval_s": 10}
    assert effective_status(doc, t0 + dt.timedelta(seconds=29)) == "running"
    assert effective_status(doc, t0 + dt.timedelta(seconds=31)) == "crashed"
    assert effective_status({**doc, "status": "finished"}, t0 + dt.timedelta(days=1)) == "finished"


def test_quickstart_trains_over_folds_and_prints_a_runs_table(
    stack: config.Settings, db: firestore.Client
) -> None:
    script = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "fold 5: run 5" in out.stdout and "5 run(s)" in out.stdout
    assert f"at {layout.runs('quickstart', 'logreg-cv')}" in out.stdout
    runs = list(db.collection(layout.runs("quickstart", "logreg-cv")).stream())
    assert sorted(r.get("fold") for r in runs) == [1, 2, 3, 4, 5]
    assert all(r.get("summary")["val/acc"]["count"] == 40 for r in runs)
    assert all(r.get("summary")["val/acc"]["last"] > 0.7 for r in runs)  # it learns


def test_idle_run_keeps_its_heartbeat_fresh(stack: config.Settings, db: firestore.Client) -> None:
    ms = Metastore(PROJECT, flush_interval_s=0.1, heartbeat_s=0.3)
    run = ms.exper("heartbeat", git_policy="off").start_run()
    ref = db.document(layout.run(PROJECT, "heartbeat", run.id))
    first = ref.get().get("heartbeat_at")
    wait_for(lambda: ref.get().get("heartbeat_at") > first, what="a heartbeat")
    doc = ref.get().to_dict()
    assert doc["heartbeat_interval_s"] == 0.3
    assert effective_status(doc, doc["heartbeat_at"]) == "running"
    assert run.finish()
