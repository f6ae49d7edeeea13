"""The read interface on Firestore: :class:`FirestoreReader`.

How a search is served (the rule :mod:`aletheia.tracking.runsearch` states
for the order itself):

* ordered by **one** term that an index serves — one metric
  (``summary.<metric>.last``, an automatic single-field index), the run
  number (automatic; unique in an experiment, so later terms may follow
  it), or the start time (automatically; with a status, model or
  ``name@version`` dataset filter through their composite indexes, newest
  first) — and with a
  ``limit``: each experiment is read in the server's order, in pages of
  ``limit`` documents (doubling), only until the page is full. Filters the
  query does not express are applied to what comes back. If an
  experiment's ordered query runs out first (fewer runs have the metric
  than asked for), the rest of the page are runs without the value, which
  tie and so come in run id order: read in pages from the ``run`` field's
  order. Ordered by the run number, then the start time (the CLI's
  listing), the runs without a number (MLflow's, explicitly named ones)
  come next, read in pages in the start time's order. With other later
  terms, that experiment is read whole instead;
* anything else (several terms, params, no limit): each experiment is read
  whole and filtered and sorted in memory.

Experiments are merged in order, so a page across every experiment reads at
most ``limit`` (plus the offset of a later page) documents per experiment.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.query import Query

from aletheia.cloud import layout, queries
from aletheia.errors import AccessDeniedError, NotFoundError
from aletheia.tracking import runmodel, runsearch
from aletheia.tracking.readapi import (
    ExperimentView,
    ProjectView,
    RunPage,
    RunReader,
    RunView,
    freeze,
)
from aletheia.tracking.runmodel import Point, RunRef
from aletheia.tracking.runsearch import RunQuery

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is Python 3.11+

#: The order of a search that names none: newest start first (as MLflow lists runs).
DEFAULT_ORDER = ("attributes.start_time DESC",)
#: Most documents one page of an ordered query asks for.
MAX_PAGE = 1000


class FirestoreReader(RunReader):
    """Reads one aletheia project through a Firestore client (built on first use)."""

    def __init__(self, client: Callable[[], firestore.Client] | firestore.Client, project: str):
        self._client = client
        self.project = layout.validate_id(project, "project name")

    @property
    def db(self) -> firestore.Client:
        """The Firestore client."""
        return self._client() if callable(self._client) else self._client

    # ------------------------------------------------------------------ projects, experiments

    def projects(self) -> list[ProjectView]:
        """Every project of the cloud project (server credentials: a signed-in user may not
        list them; such a user reads one project by name)."""
        try:
            snaps = list(self.db.collection(layout.PROJECTS).stream())
        except gexc.PermissionDenied as exc:
            raise AccessDeniedError(
                "listing every project needs server credentials",
                "a signed-in user reads the projects they are a member of by name: "
                "`aletheia project show -p NAME`",
            ) from exc
        return [_project_view(s.id, s.to_dict() or {}) for s in sorted(snaps, key=lambda s: s.id)]

    def experiments(self) -> list[ExperimentView]:
        """Every experiment of the project, by name."""
        snaps = self.db.collection(layout.experiments(self.project)).stream()
        views = [self._experiment_view(s.id, s.to_dict() or {}) for s in snaps]
        return sorted(views, key=lambda v: v.name)

    def experiment(self, name: str) -> ExperimentView:
        """Experiment ``name``, or :class:`NotFoundError`."""
        path = layout.experiment(self.project, layout.validate_id(name, "experiment name"))
        snap = self.db.document(path).get()
        if not snap.exists:
            raise NotFoundError(
                f"no experiment {name!r} in project {self.project!r}",
                "list them with `aletheia experiments list`",
            )
        return self._experiment_view(name, snap.to_dict() or {})

    def _experiment_view(self, name: str, doc: Mapping[str, Any]) -> ExperimentView:
        return ExperimentView(
            project=self.project,
            name=name,
            desc=str(doc.get("desc") or ""),
            created_at=doc.get("created_at"),
            lifecycle_stage=str(doc.get("lifecycle_stage") or "active"),
            doc=freeze(dict(doc)),
            reader=self,
        )

    # ------------------------------------------------------------------ runs

    def get_run(self, experiment: str, run_id: str) -> RunView:
        """Run ``run_id`` of ``experiment``, or :class:`NotFoundError`."""
        experiment = layout.validate_id(experiment, "experiment name")
        snap = self.db.document(layout.run(self.project, experiment, run_id)).get()
        if not snap.exists:
            raise NotFoundError(
                f"no run {run_id!r} in experiment {experiment!r} of project {self.project!r}",
                f"list runs with `aletheia runs list -e {experiment}`",
            )
        return self._view(experiment, snap, runmodel.now())

    def search_runs(
        self, experiments: Sequence[str] | None = None, **query: Unpack[RunQuery]
    ) -> RunPage:
        """See :meth:`RunReader.search_runs`; how it is served: the module doc."""
        search = runsearch.run_search(**query)
        if not search.order:
            search = search.ordered_by(DEFAULT_ORDER)
        names = (
            [layout.validate_id(e, "experiment name") for e in experiments]
            if experiments is not None
            else [v.name for v in self.experiments()]
        )
        at = runmodel.now()  # one moment judges every heartbeat of the search
        key = search.sort_key()

        def doc_key(view: RunView) -> Any:
            return key(view.doc)

        per_experiment = [sorted(self._matching(e, search, at), key=doc_key) for e in names]
        ordered = list(heapq.merge(*per_experiment, key=doc_key))
        runs, token = search.page(ordered)
        return RunPage(runs, token)

    def _matching(self, experiment: str, search: runsearch.RunSearch, at: Any) -> list[RunView]:
        """The runs of one experiment the page may need: its first ``needed`` matches in
        the search's order when an ordered query serves it, else every match."""
        query = self._ordered_query(experiment, search)
        term = _leading_term(search)
        needed = search.needed
        if query is not None and term is not None and needed is not None:

            def valued(view: RunView) -> bool:
                # Firestore sorts NaN before every number, this order after them: such
                # runs are read with the runs that have no value.
                return not runsearch.is_missing(term.value(view.doc)) and search.matches(view.doc)

            top = self._read_pages(experiment, query, valued, needed, at)
            if len(top) == needed:
                return top
            if _only_term(search, term):
                # The rest are runs without the value: they tie, so they come in run id
                # order, the direction of the term, which is the documents' own order.
                def unvalued(view: RunView) -> bool:
                    return runsearch.is_missing(term.value(view.doc)) and search.matches(view.doc)

                by_id = queries.runs_by_id(
                    self.db, self.project, experiment, descending=term.descending
                )
                return top + self._read_pages(experiment, by_id, unvalued, needed - len(top), at)
            rest = self._unnumbered_by_start(experiment, search, term, needed - len(top), at)
            if rest is not None:
                return top + rest
        snaps = self.db.collection(layout.runs(self.project, experiment)).stream()
        views = (self._view(experiment, s, at) for s in snaps)
        return [v for v in views if search.matches(v.doc)]

    def _unnumbered_by_start(
        self,
        experiment: str,
        search: runsearch.RunSearch,
        term: runsearch.OrderTerm,
        count: int,
        at: Any,
    ) -> list[RunView] | None:
        """After the numbered runs, the next ``count`` runs without a number, read in start
        order, when the order is the run number then the start time (the CLI's listing;
        MLflow's and explicitly named runs have no number); ``None`` when that does not
        serve the search or does not find ``count`` of them (runs without a start time are
        not in that index: only a full read finds them)."""
        terms = [t for t in search.order if (t.kind, t.key) != ("attributes", "experiment")]
        if (term.kind, term.key) != ("attributes", "number") or len(terms) != 2:
            return None
        then = terms[1]
        # Equal start times come in id order in the query's direction; the search breaks
        # ties in the first term's direction: the query serves it only when they agree.
        if (then.kind, then.key) != ("attributes", "start_time") or (
            then.descending != search.order[0].descending
        ):
            return None

        def unnumbered(view: RunView) -> bool:
            return (
                runsearch.is_missing(term.value(view.doc))
                and not runsearch.is_missing(then.value(view.doc))
                and search.matches(view.doc)
            )

        by_start = queries.runs_by_start(
            self.db, self.project, experiment, descending=then.descending
        )
        found = self._read_pages(experiment, by_start, unnumbered, count, at)
        return found if len(found) == count else None

    def _ordered_query(self, experiment: str, search: runsearch.RunSearch) -> Query | None:
        """A query returning runs in the search's order, if an index serves it."""
        term = _leading_term(search)
        if term is None:
            return None
        p, e = self.project, experiment
        if term.kind == "metrics":
            return queries.runs_by_metric(self.db, p, e, term.key, descending=term.descending)
        if (term.kind, term.key) == ("attributes", "number"):
            return queries.runs_by_number(self.db, p, e, descending=term.descending)
        if (term.kind, term.key) != ("attributes", "start_time"):
            return None
        if term.descending and search.dataset is not None and "@" in search.dataset:
            name, _, version = search.dataset.partition("@")
            return queries.runs_using_dataset(self.db, p, e, layout.dataset_ref(name, version))
        if term.descending and search.model is not None:
            return queries.runs_by_model(self.db, p, e, search.model)
        if term.descending and search.statuses:
            stored = runsearch.stored_statuses(search.statuses)
            return queries.runs_by_status(self.db, p, e, stored)
        return queries.runs_by_start(self.db, p, e, descending=term.descending)

    def _read_pages(
        self,
        experiment: str,
        query: Query,
        accept: Callable[[RunView], bool],
        count: int,
        at: Any,
    ) -> list[RunView]:
        """The first ``count`` runs ``accept`` takes, read in the query's order in pages
        (``count``, then doubling up to :data:`MAX_PAGE`); fewer if the query runs out."""
        found: list[RunView] = []
        last: DocumentSnapshot | None = None
        size = min(max(count, 1), MAX_PAGE)
        while True:
            page = query.limit(size)
            if last is not None:
                page = page.start_after(last)
            snaps = list(page.stream())
            for snap in snaps:
                view = self._view(experiment, snap, at)
                if accept(view):
                    found.append(view)
                    if len(found) == count:
                        return found
            if len(snaps) < size:
                return found
            last = snaps[-1]
            size = min(size * 2, MAX_PAGE)

    def _view(self, experiment: str, snap: DocumentSnapshot, at: Any) -> RunView:
        doc = snap.to_dict() or {}
        doc.setdefault("run", snap.id)
        return RunView.from_doc(self.project, experiment, doc, self, at=at)

    # ------------------------------------------------------------------ metrics

    def metric_history(
        self, run: RunRef, key: str, doc: Mapping[str, Any] | None = None
    ) -> list[Point]:
        """Every point of ``key``: its chunks read by id when the run's summary counts them,
        else found by the ``key`` field (one query, no run document needed)."""
        count = ((doc or {}).get("summary") or {}).get(key, {}).get("count")
        db = self.db
        if isinstance(count, int):
            refs = [db.document(run.chunk_path(key, n)) for n in range(runmodel.chunk_count(count))]
            snaps: Iterable[DocumentSnapshot] = db.get_all(refs) if refs else []
        else:
            snaps = queries.metric_chunks_of_key(
                db, run.project, run.experiment, run.run, key
            ).stream()
        points = [p for s in snaps if s.exists for p in runmodel.chunk_points(s.to_dict() or {})]
        # Chunks come back in any order: the per-key index is the logging order.
        return sorted(points, key=lambda p: p.index)

    def metric_histories(self, run: RunRef) -> dict[str, list[Point]]:
        """Every metric of ``run`` (one read of its chunk collection), by key."""
        series: dict[str, list[Point]] = {}
        col = self.db.collection(layout.metrics(run.project, run.experiment, run.run))
        for snap in col.stream():
            chunk = snap.to_dict() or {}
            key = str(chunk.get("key") or layout.parse_metric_chunk_id(snap.id)[0])
            series.setdefault(key, []).extend(runmodel.chunk_points(chunk))
        return {k: sorted(v, key=lambda p: p.index) for k, v in series.items()}

    def run_files(self, run: RunRef) -> list[Mapping[str, Any]]:
        """The ``ArtifactFiles`` entries of ``run`` (one read of the collection), by path."""
        col = self.db.collection(layout.run_artifact_files(run.project, run.experiment, run.run))
        entries = [freeze(s.to_dict() or {}) for s in col.stream()]
        return sorted(entries, key=lambda e: str(e.get("path")))


def _leading_term(search: runsearch.RunSearch) -> runsearch.OrderTerm | None:
    """The one term an experiment's ordered query must follow, if there is one.

    Within one experiment ``attributes.experiment`` is constant and drops out.
    One term is left, or several whose first is unique within an experiment
    (the run number): the later terms then only order runs without a number,
    which the query leaves out and the scan that follows it sorts.
    """
    terms = [t for t in search.order if (t.kind, t.key) != ("attributes", "experiment")]
    if len(terms) == 1 or (terms and (terms[0].kind, terms[0].key) == ("attributes", "number")):
        return terms[0]
    return None


def _only_term(search: runsearch.RunSearch, term: runsearch.OrderTerm) -> bool:
    """True if ``term`` is all of the search's order within one experiment."""
    return all(t == term or (t.kind, t.key) == ("attributes", "experiment") for t in search.order)


def _project_view(name: str, doc: Mapping[str, Any]) -> ProjectView:
    return ProjectView(
        name=name,
        description=str(doc.get("description") or ""),
        created_at=doc.get("created_at"),
        members=freeze(dict(doc.get("members") or {})),
        doc=freeze(dict(doc)),
    )


__all__ = ["DEFAULT_ORDER", "FirestoreReader"]
