"""Inside a kernel that ``aletheia run`` started: which runs the notebook opens, and its errors.

``aletheia run nb.ipynb`` (:mod:`aletheia.tracking.nbrun`) starts the
notebook's kernel with :data:`RUNS_ENV` naming a file; every run started in
that process is noted there (one JSON line: project, experiment, run), so
the runner finds exactly the runs this execution started, never "the newest
run of some experiment", and saves the executed notebook with them.
:data:`EXPERIMENT_ENV` carries ``-e``: ``Metastore.exper()`` called without
a name uses it.

A cell that raises does not end a kernel (Jupyter survives errors), so a
run opened with a bare ``start_run()`` would stay ``running`` until the
kernel is shut down. The first run noted installs an IPython
``post_run_cell`` hook: a cell that raised ends the runs still open
``failed`` with its traceback (papermill executes no later cell).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from aletheia.tracking import openruns
from aletheia.tracking.runmodel import RunRef

#: File the kernel notes the runs it starts in (set by ``aletheia run`` only).
RUNS_ENV = "ALETHEIA_NOTEBOOK_RUNS"
#: The experiment ``aletheia run -e`` names, for ``Metastore.exper()`` without a name.
EXPERIMENT_ENV = "ALETHEIA_EXPERIMENT"

_hooked = False


def default_experiment() -> str | None:
    """The experiment ``aletheia run -e`` gave this process, if any."""
    return os.environ.get(EXPERIMENT_ENV) or None


def note_started(ref: RunRef) -> None:
    """Tell ``aletheia run`` (when it started this process) that run ``ref`` started."""
    path = os.environ.get(RUNS_ENV)
    if not path:
        return
    line = json.dumps({"project": ref.project, "experiment": ref.experiment, "run": ref.run})
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    _end_runs_on_cell_errors()


def read_started(path: Path) -> list[RunRef]:
    """The runs noted in ``path``, in the order they started (each once)."""
    if not path.is_file():
        return []
    refs: list[RunRef] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            doc = json.loads(line)
            ref = RunRef(doc["project"], doc["experiment"], doc["run"])
            if ref not in refs:
                refs.append(ref)
    return refs


def _end_runs_on_cell_errors() -> None:
    global _hooked
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if _hooked or shell is None:
        return
    shell.events.register("post_run_cell", _after_cell)
    _hooked = True


def _after_cell(result: Any) -> None:
    exc = getattr(result, "error_in_exec", None)
    if exc is None:
        return
    status, error = openruns.ending_of(exc)
    for run in openruns.active_runs():
        run.finish(status, error=error)
