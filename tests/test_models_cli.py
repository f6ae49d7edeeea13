"""``aletheia models``: list, show, register, alias, pull and compare, as a user types them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_datasets import make_tree
from typer.testing import CliRunner

from aletheia.cli import app
from aletheia.cloud import config
from aletheia.tracking.metastore import Metastore

P, E = "models-cli", "train"
runner = CliRunner()


def cli(*args: str) -> Any:
    result = runner.invoke(app, ["models", *args, "-p", P, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_models_commands_end_to_end(
    stack: config.Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALETHEIA_CACHE_DIR", str(tmp_path / "cli-cache"))
    ms = Metastore(P, settings=stack, flush_interval_s=0.2)
    ms.set_downloader(tmp_path / "cache")
    exper = ms.exper(E, git_policy="off")
    runs = []
    for lr, data in ((0.1, b"small"), (0.01, b"large model")):
        out = make_tree(tmp_path / f"out{lr}", {"model.bin": data})
        with exper.start_run(hyper_params={"lr": lr}) as run:
            run.record_dataset("digits", "v1" if lr == 0.1 else "v2")
            run.add_metric("acc", 0.8 if lr == 0.1 else 0.9)
            run.add_artifact("weights", out / "model.bin")
        runs.append(run.id)

    first = cli("register", "clf", "--run", f"{E}/{runs[0]}", "--artifact", "weights")
    assert (first["version"], first["run"], first["datasets"]) == (1, runs[0], ["digits@v1"])
    second = cli(
        "register", "clf", "--run", f"{E}/{runs[1]}", "--artifact", "weights", "-a", "staging"
    )
    assert (second["version"], second["aliases"]) == (2, ["staging"])

    moved = runner.invoke(app, ["models", "alias", "clf", "champion", "1", "-p", P])
    assert moved.exit_code == 0, moved.output
    listed = cli("list")
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in listed] == [
        ("clf", 2, {"champion": 1, "staging": 2})
    ]
    shown = cli("show", "clf")
    assert [(v["version"], v["aliases"]) for v in shown["versions"]] == [
        (1, ["champion"]),
        (2, ["staging"]),
    ]
    one = cli("show", "clf", "--alias", "staging")
    assert (one["version"], one["hyper_params"], one["metrics"]) == (2, {"lr": 0.01}, {"acc": 0.9})

    pulled = cli("pull", "clf", "--alias", "champion", "--to", str(tmp_path / "got"))
    assert (tmp_path / "got" / "model.bin").read_bytes() == b"small"
    assert pulled["version"] == 1

    rows = {r["field"]: (r["a"], r["b"]) for r in cli("compare", "clf", "champion", "2")}
    assert rows["hyper_params.lr"] == (0.1, 0.01)
    assert rows["metrics.acc"] == (0.8, 0.9)
    assert rows["data"] == ("digits@v1", "digits@v2")
    assert rows["run"] == (f"{E}/{runs[0]}", f"{E}/{runs[1]}")

    trained = cli("list", "--dataset", "digits@v2")
    assert [(m["name"], m["version"]) for m in trained] == [("clf", 2)]

    table = runner.invoke(app, ["models", "compare", "clf", "1", "2", "-p", P])
    assert table.exit_code == 0 and "metrics.acc" in table.stdout and "0.9" in table.stdout
    text = runner.invoke(app, ["models", "show", "clf", "-v", "1", "-p", P])
    assert text.exit_code == 0 and "digits@v1" in text.stdout and runs[0] in text.stdout

    missing = runner.invoke(app, ["models", "show", "clf", "-v", "9", "-p", P])
    assert missing.exit_code == 5 and "no version 9" in missing.output
    bad = runner.invoke(app, ["models", "alias", "clf", "latest", "1", "-p", P])
    assert bad.exit_code == 2 and "reserved" in bad.output
    gone = runner.invoke(app, ["models", "alias", "clf", "staging", "--delete", "-p", P])
    assert gone.exit_code == 0
    assert cli("list")[0]["aliases"] == {"champion": 1}
