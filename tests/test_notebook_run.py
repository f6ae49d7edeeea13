"""``aletheia run NB.ipynb -p ...``: a real notebook executed by a real Jupyter kernel.

The notebook is written with nbformat, executed by papermill in an
ipykernel of this interpreter, against the real local stack; the run it
starts is found with its parameters, metrics and the executed notebook
(outputs included) as a blob; a cell that raises fails the run, the
command says which cell, and the partial notebook is still saved.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from aletheia.cloud import clients, config
from aletheia.data import blobrefs
from aletheia.data.blobstore import BlobStore
from aletheia.errors import NotebookFailedError, ValidationError
from aletheia.tracking.metastore import Metastore
from aletheia.tracking.runmodel import FAILED, FINISHED

from helpers import GENEROUS_S

P = "notebooks"


def write_notebook(path: Path, *cells: str) -> Path:
    """A notebook: a `parameters` cell, a run started and logging, then ``cells``."""
    params = new_code_cell("lr = 0.1\nepochs = 3\n", metadata={"tags": ["parameters"]})
    train = new_code_cell(
        "from aletheia.tracking.metastore import Metastore\n"
        f"run = Metastore({P!r}).exper().start_run(params={{'lr': lr, 'epochs': epochs}})\n"
        "for step in range(epochs):\n"
        "    run.add_metric('loss', lr * (step + 1), step)\n"
        "import sys\n"
        "print('trained with lr', lr, 'in', sys.executable)\n"
    )
    nb = new_notebook(
        cells=[params, train, *(new_code_cell(c) for c in cells)],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(nb, path)
    return path


def aletheia(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command line, in its own process (its exit code is the process's)."""
    return subprocess.run(
        [sys.executable, "-c", "from aletheia.cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=GENEROUS_S,
    )


def executed_notebook(settings: config.Settings, doc: dict) -> nbformat.NotebookNode:
    ref = doc["notebook"]["executed_ref"]
    blobs = Metastore(P, settings=settings).blobstore
    assert isinstance(blobs, BlobStore)
    return nbformat.reads(blobs.get_bytes(ref["sha256"]).decode(), as_version=4)


def outputs_text(cell: nbformat.NotebookNode) -> str:
    return "".join(
        o.get("text", "") + o.get("ename", "") + ": " + o.get("evalue", "")
        if "ename" in o
        else o.get("text", "")
        for o in cell.get("outputs", [])
    )


def test_notebook_run_records_params_metrics_and_executed_notebook(
    stack: config.Settings, tmp_path: Path
) -> None:
    nb = write_notebook(tmp_path / "train.ipynb")  # the run is left open: the kernel ends it
    out = tmp_path / "out.ipynb"
    done = aletheia(
        "run",
        str(nb),
        "-p",
        "lr=0.05",
        "-p",
        "epochs=2",
        "-e",
        "E",
        "--output",
        str(out),
        "--project",
        P,
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["runs"] == [{"experiment": "E", "run": "1"}]

    view = Metastore(P, settings=stack).experiment("E").run("1")
    assert view.status == FINISHED
    assert view.params == {"lr": 0.05, "epochs": 2}
    assert [(p.step, p.value) for p in view.metric_history("loss")] == [(0, 0.05), (1, 0.1)]
    doc = dict(view.doc)
    assert doc["notebook"]["path"] == str(nb.resolve())
    assert doc["notebook"]["parameters"] == {"lr": 0.05, "epochs": 2}
    assert doc["notebook"]["content_ref"]["sha256"]  # the notebook as given
    executed = executed_notebook(stack, doc)
    # The blob registry holds the executed notebook for the run, so `datasets rm` keeps it.
    sha = doc["notebook"]["executed_ref"]["sha256"]
    assert blobrefs.holders(clients.firestore_client(stack), P, sha), "executed notebook unheld"
    # papermill's injected cell follows the `parameters` cell, and the outputs are there.
    assert "injected-parameters" in executed.cells[1].metadata.get("tags", [])
    # ... by a kernel of this interpreter, whatever kernelspecs the machine has.
    assert f"trained with lr 0.05 in {sys.executable}" in outputs_text(executed.cells[2])
    assert nbformat.read(out, as_version=4).cells[2].outputs == executed.cells[2].outputs


def test_failing_cell_fails_the_run_and_keeps_the_partial_notebook(
    stack: config.Settings, tmp_path: Path
) -> None:
    nb = write_notebook(tmp_path / "broken.ipynb", "1 / 0\n", "print('never')\n")
    done = aletheia("run", str(nb), "-p", "lr=0.2", "-e", "E", "--project", P, cwd=tmp_path)
    assert done.returncode == NotebookFailedError.exit_code, done.stdout + done.stderr
    said = " ".join(done.stderr.split())  # the error line may wrap
    assert "cell 4 (In [4]: 1 / 0) of broken.ipynb raised ZeroDivisionError" in said, said

    view = Metastore(P, settings=stack).experiment("E").run("1")
    assert view.status == FAILED
    assert view.params["lr"] == 0.2
    doc = dict(view.doc)
    assert doc["error"].startswith("cell 4 (In [4]: 1 / 0) of broken.ipynb")
    assert "ZeroDivisionError: division by zero" in doc["error"]
    executed = executed_notebook(stack, doc)
    by_source = {c.source: c for c in executed.cells if c.cell_type == "code"}
    assert "ZeroDivisionError: division by zero" in outputs_text(by_source["1 / 0\n"])
    assert outputs_text(by_source["print('never')\n"]) == ""  # papermill stopped at the error


def test_bad_parameter_is_refused(stack: config.Settings, tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "train.ipynb")
    done = aletheia("run", str(nb), "-p", "lr", "--project", P, cwd=tmp_path)
    assert done.returncode == 2
    assert "NAME=VALUE" in done.stderr
    assert Metastore(P, settings=stack).experiments() == []  # nothing was executed


def test_exper_without_a_name_outside_aletheia_run_says_what_to_do(
    stack: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALETHEIA_EXPERIMENT", raising=False)
    with pytest.raises(ValidationError, match="needs an experiment name"):
        Metastore(P, settings=stack).exper()
