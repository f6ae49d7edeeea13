"""The read interface and the read-only objects it returns.

:class:`RunReader` is the read half of aletheia's store interface, in the
spirit of MLflow's ``AbstractStore``: :meth:`~RunReader.get_run`,
:meth:`~RunReader.search_runs`, :meth:`~RunReader.metric_history`, plus the
projects and experiments around them. :mod:`aletheia.tracking.firestore_reader`
implements it on Firestore; the public API (``ms.experiments()``,
``exper.runs(...)``, ``exper.run(id)``), the CLI, the MLflow plugin's read
paths and the exporter all read through it.

What it returns cannot be written by accident: a :class:`RunView` is a
frozen snapshot of the run document as it was read (its maps are read-only
mappings, its lists tuples); it has no logging methods. To log, start a run
(``exper.start_run()``).
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from aletheia.tracking import runsearch
from aletheia.tracking.runmodel import Point, RunRef, effective_status
from aletheia.tracking.runsearch import RunQuery

if TYPE_CHECKING:  # pandas is optional: only the frame methods need it
    import pandas
    from typing_extensions import Unpack  # typing.Unpack is Python 3.11+


def freeze(value: Any) -> Any:
    """``value`` with every dict made a read-only mapping and every list a tuple."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable copy of a :func:`freeze` d value (dicts and lists again)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ArtifactEntry:
    """An artifact version a run saved (``exper.get_artifact(name, version)`` fetches it)."""

    name: str
    version: str


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset version a run recorded using."""

    name: str
    version: str | None

    @property
    def ref(self) -> str:
        """``name@version`` (the form ``runs(dataset=...)`` and the CLI accept)."""
        return f"{self.name}@{self.version}" if self.version else self.name


@dataclass(frozen=True)
class RunView:
    """One run as read: fields, params, final metrics. Read-only; see the module doc.

    ``status`` is the *effective* status (a ``running`` run whose heartbeat
    went stale reads ``crashed``); ``stored_status`` is what the document
    says. ``metrics`` holds each metric's last value; ``summary`` its
    count/min/max/last; ``doc`` the whole document.
    """

    project: str
    experiment: str
    id: str
    status: str
    stored_status: str | None
    number: int | None
    fold: int | None
    model: str | None
    params: Mapping[str, Any]
    hyper_params: Mapping[str, Any]
    metrics: Mapping[str, float | None]
    summary: Mapping[str, Mapping[str, Any]]
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    debug: bool
    doc: Mapping[str, Any] = field(repr=False)
    reader: RunReader | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_doc(
        cls,
        project: str,
        experiment: str,
        doc: Mapping[str, Any],
        reader: RunReader | None = None,
        *,
        at: dt.datetime | None = None,
    ) -> RunView:
        """A view of a stored run document (``at``: when its status is judged; default now)."""
        stored = doc.get("status")
        whole = freeze({**doc, "experiment": experiment, "status": effective_status(doc, at)})
        summary = whole.get("summary") or _EMPTY
        number = doc.get("number")
        fold = doc.get("fold")
        return cls(
            project=project,
            experiment=experiment,
            id=str(doc.get("run")),
            status=str(whole["status"]),
            stored_status=None if stored is None else str(stored),
            number=number if isinstance(number, int) else None,
            fold=fold if isinstance(fold, int) else None,
            model=runsearch.model_name(doc),
            params=whole.get("params") or _EMPTY,
            hyper_params=whole.get("hyper_params") or _EMPTY,
            metrics=MappingProxyType({k: runsearch.last_metric(doc, k) for k in summary}),
            summary=summary,
            started_at=doc.get("started_at"),
            ended_at=doc.get("ended_at"),
            debug=bool(doc.get("debug")),
            doc=whole,
            reader=reader,
        )

    @property
    def ref(self) -> RunRef:
        """Where the run lives."""
        return RunRef(self.project, self.experiment, self.id)

    def to_dict(self) -> dict[str, Any]:
        """A plain copy of the document (effective ``status``, ``stored_status``) to change
        or serialise; changing it changes nothing stored."""
        return {**thaw(self.doc), "stored_status": self.stored_status}

    def param(self, key: str) -> Any:
        """A param, else a hyper-param (None when the run has neither)."""
        return runsearch.param_value(self.doc, key)

    def artifacts(self) -> list[ArtifactEntry]:
        """The artifact versions this run saved, in order."""
        return [
            ArtifactEntry(str(a.get("name")), str(a.get("version")))
            for a in self.doc.get("artifacts") or ()
            if isinstance(a, Mapping)
        ]

    def datasets(self) -> list[DatasetEntry]:
        """The dataset versions this run recorded using (``run.get_dataset``)."""
        entries = [
            DatasetEntry(str(d.get("name")), d.get("version") and str(d.get("version")))
            for d in self.doc.get("datasets") or ()
            if isinstance(d, Mapping) and d.get("name")
        ]
        if not entries:  # documents that kept only the refs
            for ref in self.doc.get("dataset_refs") or ():
                name, _, version = str(ref).partition("@")
                entries.append(DatasetEntry(name, version or None))
        return entries

    def metric_history(self, key: str) -> list[Point]:
        """Every logged point of metric ``key`` (index, step, value, ts), in logging order."""
        return self._reader().metric_history(self.ref, key, self.doc)

    def _reader(self) -> RunReader:
        if self.reader is None:
            raise TypeError("this RunView was built without a reader: it cannot read more")
        return self.reader


class RunPage(list[RunView]):
    """A page of runs; ``next_page_token`` is None on the last page."""

    def __init__(self, runs: Iterable[RunView], next_page_token: str | None = None) -> None:
        super().__init__(runs)
        self.next_page_token = next_page_token


@dataclass(frozen=True)
class ProjectView:
    """An aletheia project (``Projects/{name}``) as read."""

    name: str
    description: str
    created_at: dt.datetime | None
    members: Mapping[str, str]
    doc: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ExperimentView:
    """An experiment as read, and the reads of its runs. Read-only."""

    project: str
    name: str
    desc: str
    created_at: dt.datetime | None
    lifecycle_stage: str
    doc: Mapping[str, Any] = field(repr=False)
    reader: RunReader | None = field(default=None, repr=False, compare=False)

    def runs(self, **query: Unpack[RunQuery]) -> RunPage:
        """This experiment's runs, e.g. ``status="finished"``, ``order_by="metrics.val/acc
        DESC"``, ``limit=10`` (every keyword: :class:`~aletheia.tracking.runsearch.RunQuery`)."""
        return self._reader().search_runs([self.name], **query)

    def run(self, run_id: str) -> RunView:
        """Run ``run_id`` of this experiment (:class:`~aletheia.errors.NotFoundError` if none)."""
        return self._reader().get_run(self.name, run_id)

    def runs_frame(self, **query: Unpack[RunQuery]) -> pandas.DataFrame:
        """The runs (filtered as :meth:`runs`) as a pandas DataFrame, one row per run.

        Columns: ``experiment, run, status, fold, model, started_at, ended_at``,
        ``params.<k>``, ``hyper_params.<k>`` and ``metrics.<k>`` (last values).
        """
        from aletheia.tracking import frames

        return frames.runs_frame(self.runs(**query))

    def fold_table(self, **query: Unpack[RunQuery]) -> pandas.DataFrame:
        """Mean ± std of final metrics per hyper-parameter set over its folds.

        One row per distinct set of params, hyper-params and model; columns
        ``folds`` (runs averaged) and ``metrics.<k>.mean`` / ``.std``. Only
        ``finished`` runs count unless ``status`` says otherwise.
        """
        from aletheia.tracking import frames

        query.setdefault("status", "finished")
        return frames.fold_table(frames.runs_frame(self.runs(**query)))

    def _reader(self) -> RunReader:
        if self.reader is None:
            raise TypeError("this ExperimentView was built without a reader")
        return self.reader


class RunReader(abc.ABC):
    """Read runs, their experiments and projects, and metric histories."""

    @abc.abstractmethod
    def projects(self) -> list[ProjectView]:
        """Every aletheia project this client can read, by name."""

    @abc.abstractmethod
    def experiments(self) -> list[ExperimentView]:
        """Every experiment of the project, by name."""

    @abc.abstractmethod
    def experiment(self, name: str) -> ExperimentView:
        """Experiment ``name`` (:class:`~aletheia.errors.NotFoundError` if it does not exist)."""

    @abc.abstractmethod
    def get_run(self, experiment: str, run_id: str) -> RunView:
        """Run ``run_id`` of ``experiment`` (:class:`~aletheia.errors.NotFoundError` if none)."""

    @abc.abstractmethod
    def search_runs(
        self, experiments: Sequence[str] | None = None, **query: Unpack[RunQuery]
    ) -> RunPage:
        """Runs of ``experiments`` (None: every experiment) that pass every filter, in order.

        The keywords are a :class:`~aletheia.tracking.runsearch.RunQuery`
        (filters, ``order_by``, ``limit``, ``page_token``); ordering and
        missing values follow :mod:`aletheia.tracking.runsearch`.
        """

    @abc.abstractmethod
    def metric_history(
        self, run: RunRef, key: str, doc: Mapping[str, Any] | None = None
    ) -> list[Point]:
        """Every point of metric ``key`` of ``run``, in logging order (``doc``: the run
        document, if the caller has it, saves a read)."""

    @abc.abstractmethod
    def metric_histories(self, run: RunRef) -> dict[str, list[Point]]:
        """Every point of every metric of ``run``, by key."""

    @abc.abstractmethod
    def run_files(self, run: RunRef) -> list[Mapping[str, Any]]:
        """The files logged to ``run`` through MLflow (``path``, ``sha256``, ``size`` ...)."""


__all__ = [
    "ArtifactEntry",
    "DatasetEntry",
    "ExperimentView",
    "ProjectView",
    "RunPage",
    "RunReader",
    "RunView",
    "freeze",
    "thaw",
]
