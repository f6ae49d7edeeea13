"""The tracking API: ``Metastore`` -> ``Experiment`` -> ``Run``.

As in the original aletheia README::

    ms = Metastore("my-project")
    ms.set_downloader(local_cache_dir)
    exper = ms.exper("exper name", debug=False, auto_inc_ids=True)
    exper.desc = "Description / notes etc"
    with exper.start_run(fold=1) as run:
        ds = run.get_dataset("ds_name", download=True)
        run.set_model("resnet18")
        run.set_hyper_params({"lr": 0.1})
        exper.add_artifact("weights", "out/", is_local=True, is_dir=True, upload_file=True)
        exper.add_metric("loss", 0.3)

Starting a run captures git and environment state (under the git policy),
then creates ``Runs/{id}``. The API is split by concern: this module is the
project's entry point (experiments, reading, models), on top of its
plumbing (:mod:`aletheia.tracking.project`); :mod:`~aletheia.tracking.experiment`
and :mod:`~aletheia.tracking.run` hold the experiment and the run, and are
imported from here too (``from aletheia.tracking.metastore import Run``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aletheia.errors import ValidationError
from aletheia.tracking.experiment import Experiment
from aletheia.tracking.openruns import MAX_ERROR_CHARS, ending_of
from aletheia.tracking.project import Project
from aletheia.tracking.readapi import ExperimentView, ProjectView
from aletheia.tracking.run import Run, active_runs
from aletheia.tracking.runids import time_run_id

if TYPE_CHECKING:
    from aletheia.models import Model, ModelInfo, ModelRegistry, ModelVersion

__all__ = [
    "MAX_ERROR_CHARS",
    "Experiment",
    "Metastore",
    "Run",
    "active_runs",
    "ending_of",
    "time_run_id",
]


class Metastore(Project):
    """Entry point: one aletheia project (``Projects/{project}``) on the configured target.

    Its arguments (settings or keyword overrides, the run writer's tuning,
    ``sync_on_start``, ``observers``) and plumbing (clients, stores, cache)
    are :class:`~aletheia.tracking.project.Project`'s; this class adds the
    API: ``exper()``, the reads (``experiments()``, ``experiment()``) and models.
    """

    # ----------------------------------------------------------- API

    def exper(
        self,
        name: str | None = None,
        debug: bool = False,
        auto_inc_ids: bool = True,
        *,
        git_policy: str | None = None,
    ) -> Experiment:
        """The experiment ``name`` (created on first use).

        ``auto_inc_ids`` numbers runs 1, 2, 3 ...; otherwise run ids are
        sortable ``20261123T101500-ab12cd``. ``debug`` runs are tagged
        ``debug: true`` and hidden by ``aletheia runs list`` unless asked for.
        ``name`` may be left out in a notebook run by ``aletheia run -e NAME``, or
        when the ``experiment`` setting names one (the repository's config).
        """
        if name is None:
            from aletheia.tracking import nblaunch

            name = nblaunch.default_experiment() or self.settings.experiment
            if name is None:
                raise ValidationError(
                    "exper() needs an experiment name",
                    "pass one, e.g. ms.exper('baseline'), set `experiment` in the "
                    "repository's .aletheia/config.toml, or run the notebook with "
                    "`aletheia run NB.ipynb -e NAME`",
                )
        return Experiment(self, name, debug=debug, auto_inc_ids=auto_inc_ids, git_policy=git_policy)

    def sync(self) -> Any:
        """Replay every unfinished journal of this target (see :mod:`aletheia.tracking.sync`)."""
        from aletheia.tracking import sync

        return sync.sync_all(self.settings, store=self.store)

    # ----------------------------------------------------------- reading (readapi)

    def projects(self) -> list[ProjectView]:
        """Every aletheia project of the configured cloud project (needs server credentials)."""
        return self.reader.projects()

    def experiments(self) -> list[ExperimentView]:
        """Every experiment of this project, read-only (``.runs()``, ``.run(id)``, frames)."""
        return self.reader.experiments()

    def experiment(self, name: str) -> ExperimentView:
        """Experiment ``name`` read-only, without creating it (``exper()`` creates)."""
        return self.reader.experiment(name)

    # ----------------------------------------------------------- models (aletheia.models)

    @property
    def model_registry(self) -> ModelRegistry:
        """The project's :class:`~aletheia.models.ModelRegistry`."""
        from aletheia.tracking import modelreg

        return modelreg.registry(self)

    def model(self, name: str) -> Model:
        """Registered model ``name``: ``.versions()``, ``.get(alias=...)``, ``.set_alias()``."""
        return self.model_registry.model(name)

    def models(self) -> list[ModelInfo]:
        """Every registered model of the project."""
        return self.model_registry.models()

    def register_model(
        self,
        name: str,
        *,
        run: Any,
        artifact: Any,
        version: str | None = None,
        flavor: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Register an artifact version a run saved as a new version of model ``name``.

        ``run`` is a run, a run read back or ``"experiment/run"``; ``artifact``
        an artifact name (``version``: which of the run's saves, default its
        last) or an ``ArtifactVersion``. See :mod:`aletheia.tracking.modelreg`.
        """
        from aletheia.tracking import modelreg

        return modelreg.register_model(
            self,
            name,
            run=run,
            artifact=artifact,
            version=version,
            flavor=flavor,
            description=description,
            tags=tags,
        )

    def models_trained_on(self, dataset: str, version: str) -> list[ModelVersion]:
        """Model versions whose training run used ``dataset@version`` (lineage)."""
        return self.model_registry.trained_on(dataset, version)
