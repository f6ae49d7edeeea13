"""``aletheia run nb.ipynb -p lr=0.1``: execute a notebook headless and save it with its runs.

papermill executes the notebook (parameters injected after the cell tagged
``parameters``, as papermill does) in a kernel of *this* interpreter
(ipykernel, started as ``python -m ipykernel_launcher``), whatever
kernelspecs the user has installed: the notebook runs with the packages
(and the aletheia settings) the command runs with.

The kernel is told (:mod:`aletheia.tracking.nblaunch`) where to note every
run it starts, the notebook it runs (so each run records it, as in
Jupyter) and the experiment ``-e`` names. Once the kernel is gone the
executed notebook, outputs included, is stored as a content-addressed blob
and each of those runs names it: ``notebook.executed_ref`` (next to
``content_ref``, the notebook as it was given) and ``notebook.parameters``.
A cell that raised: papermill stops there, the run was ended ``failed`` by
the kernel (its traceback), its ``error`` is prefixed with the cell, the
partially executed notebook is saved all the same, and
:class:`~aletheia.errors.NotebookFailedError` says which cell.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aletheia.cloud import config
from aletheia.data import blobrefs
from aletheia.errors import ConfigError, ValidationError
from aletheia.tracking import nblaunch, notebook
from aletheia.tracking.compose import Backend
from aletheia.tracking.direct import DirectWrites
from aletheia.tracking.openruns import MAX_ERROR_CHARS
from aletheia.tracking.runmodel import FAILED, RUNNING, RunRef, now

#: How long the runner waits for the kernel's runs to end once it is shut down (a ceiling).
END_WAIT_S = 120.0


@dataclass(frozen=True)
class CellError:
    """The cell that raised: its index in the executed notebook, ``In [n]``, its source, the error.

    ``index`` counts from 0 in the executed notebook, papermill's
    ``injected-parameters`` cell included; :meth:`describe` counts from 1.
    """

    index: int
    execution_count: int | None
    source: str
    ename: str
    evalue: str

    def describe(self, name: str) -> str:
        """``cell 4 (In [4]: 1 / 0) of nb.ipynb raised ZeroDivisionError: division by zero``."""
        line = next((s.strip() for s in self.source.splitlines() if s.strip()), "")
        line = line if len(line) <= 60 else line[:57] + "..."
        count = "" if self.execution_count is None else str(self.execution_count)
        return (
            f"cell {self.index + 1} (In [{count}]: {line}) of {name} "
            f"raised {self.ename}: {self.evalue}"
        )


@dataclass
class NotebookRun:
    """What one execution did: the runs it started, the executed notebook, the cell that failed."""

    notebook: Path
    parameters: dict[str, Any]
    runs: list[RunRef] = field(default_factory=list)
    executed_ref: dict[str, Any] | None = None
    output: Path | None = None
    error: CellError | None = None


def parse_parameters(pairs: Sequence[str]) -> dict[str, Any]:
    """``["lr=0.1", "b=x"]`` as papermill's ``-p`` reads them: True/False/None, int, float, text."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"parameter {pair!r} is not NAME=VALUE", "pass e.g. -p lr=0.1")
        parameters[key.strip()] = _value(value)
    return parameters


def _value(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def execute(
    settings: config.Settings,
    path: Path,
    parameters: Mapping[str, Any],
    *,
    experiment: str | None = None,
    output: Path | None = None,
) -> NotebookRun:
    """Execute notebook ``path`` with ``parameters``; save the executed notebook with its runs."""
    if path.suffix != ".ipynb" or not path.is_file():
        raise ValidationError(f"{path} is not a notebook file", "pass an existing NAME.ipynb")
    try:
        import papermill
        from papermill.exceptions import PapermillExecutionError
    except ImportError as exc:
        raise ConfigError(
            f"running notebooks needs papermill ({exc})", "pip install 'aletheia[notebooks]'"
        ) from exc
    path = path.resolve()
    result = NotebookRun(path, dict(parameters), output=output)
    with tempfile.TemporaryDirectory(prefix="aletheia-nb-") as tmp:
        runs_file = Path(tmp) / "runs.jsonl"
        executed = output.resolve() if output else Path(tmp) / path.name
        env = {
            notebook.NOTEBOOK_ENV: str(path),
            nblaunch.RUNS_ENV: str(runs_file),
            nblaunch.EXPERIMENT_ENV: experiment,
            "ALETHEIA_PROJECT": settings.project,
        }
        with _environment(env):
            try:
                papermill.execute_notebook(
                    str(path),
                    str(executed),
                    parameters=dict(parameters),
                    kernel_name="python3",
                    kernel_manager_class=_this_python_kernel(),
                    progress_bar=False,
                    cwd=str(path.parent),
                )
            except PapermillExecutionError as exc:
                result.error = CellError(
                    exc.cell_index, exc.exec_count, exc.source, exc.ename, exc.evalue
                )
        result.runs = nblaunch.read_started(runs_file)
        if result.runs and executed.is_file():
            _save_with_runs(settings, result, executed.read_bytes())
    return result


def _save_with_runs(settings: config.Settings, result: NotebookRun, executed: bytes) -> None:
    backend = Backend(settings, result.runs[0].project)
    info = backend.blobs.put_bytes(executed, content_type="application/x-ipynb+json")
    result.executed_ref = {"sha256": info.sha256, "uri": info.uri, "size": info.size}
    writes = DirectWrites(backend.db)
    for ref in result.runs:
        doc = _ended(backend, ref)
        fields: dict[str, Any] = {
            "notebook": {
                "path": str(result.notebook),
                "executed_ref": result.executed_ref,
                "parameters": result.parameters,
            }
        }
        if result.error is not None:
            cell = result.error.describe(result.notebook.name)
            fields["error"] = f"{cell}\n{doc.get('error') or ''}"[:MAX_ERROR_CHARS]
        if doc.get("status") == RUNNING:  # the kernel died before it could end the run
            fields.update({"status": FAILED, "ended_at": now()})
            fields.setdefault("error", "the notebook's kernel exited before the run ended")
        writes.log_batch(ref, fields=fields)
        # Registered as a run's other blobs are, so `datasets rm` never frees the notebook.
        blobrefs.record(
            backend.db, ref.project, blobrefs.run_references(ref.experiment, ref.run, fields)
        )


def _ended(backend: Backend, ref: RunRef) -> dict[str, Any]:
    """The run's document once the kernel's exit has ended it (or the ceiling has passed)."""
    deadline = time.monotonic() + END_WAIT_S
    while True:
        snap = backend.db.document(ref.path).get()
        doc = snap.to_dict() or {} if snap.exists else {}
        if doc.get("status") != RUNNING or time.monotonic() > deadline:
            return doc
        time.sleep(0.2)


@contextlib.contextmanager
def _environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """``values`` in ``os.environ`` (None: unset) while the kernel starts, then as they were."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            _set_env(name, value)
        yield
    finally:
        for name, value in saved.items():
            _set_env(name, value)


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _this_python_kernel() -> type:
    """A kernel manager starting ipykernel in this interpreter, whatever kernelspecs exist."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Float

    spec = KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name=f"Python {sys.version_info.major}.{sys.version_info.minor} (aletheia)",
        language="python",
    )

    class ThisPythonKernel(AsyncKernelManager):
        # The kernel's exit ends the runs a bare start_run() opened (Firestore writes): the
        # default 5 s before the kernel is killed is too short on a loaded machine.
        shutdown_wait_time = Float(END_WAIT_S)

        @property
        def kernel_spec(self) -> KernelSpec:
            return spec

    return ThisPythonKernel


__all__ = ["END_WAIT_S", "CellError", "NotebookRun", "execute", "parse_parameters"]
