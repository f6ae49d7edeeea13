"""Models from runs: ``run.log_model``, ``ms.register_model``, ``ms.model(name)``.

The registry itself is :mod:`aletheia.models` (below tracking: it knows
artifact versions, not runs). This module supplies what only the tracking
layer knows: what a run was at registration (:class:`~aletheia.models.RunFacts`
from the run as read back) and how to read a run for a version's lineage.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aletheia.cloud import layout
from aletheia.data.artifacts import ArtifactVersion
from aletheia.errors import ValidationError
from aletheia.models import ModelRegistry, ModelVersion, RunFacts, packaging
from aletheia.tracking.readapi import RunView, thaw

# The Metastore and its Run are passed in (typed Any): importing them here would
# make a cycle with aletheia.tracking.metastore and .run, whose methods call this module.
Metastore = Any
Run = Any


def registry(ms: Metastore) -> ModelRegistry:
    """The model registry of ``ms``'s project, reading runs through ``ms.reader``."""
    return ModelRegistry(
        ms.db,
        ms.project,
        artifacts=ms.artifacts,
        owner=ms.settings.owner,
        run_lookup=lambda experiment, run: ms.reader.get_run(experiment, run),
    )


def facts(view: RunView) -> RunFacts:
    """What a model version records of run ``view``: params, last metrics, data, code."""
    datasets = [
        (str(d.get("name")), str(d.get("version")))
        for d in view.doc.get("datasets") or ()
        if d.get("name") and d.get("version")
    ]
    return RunFacts(
        experiment=view.experiment,
        run=view.id,
        params=thaw(view.params),
        hyper_params=thaw(view.hyper_params),
        metrics=dict(view.metrics),
        datasets=datasets,
        git=thaw(view.doc.get("git") or {}),
    )


def _view_of(ms: Metastore, run: Any) -> RunView:
    """A run given as a live ``Run``, a ``RunView`` or ``"experiment/run"``, read back."""
    if isinstance(run, RunView):
        return run
    if isinstance(run, str):
        experiment, sep, run_id = run.rpartition("/")
        if not sep or not experiment:
            raise ValidationError(
                f"run {run!r} does not say its experiment", "pass it as 'experiment/run'"
            )
        return ms.reader.get_run(experiment, run_id)
    exper = getattr(run, "exper", None)
    if exper is None or not hasattr(run, "flush"):
        raise ValidationError(
            f"cannot register from {type(run).__name__}",
            "pass a run, a run read back (exper.run(id)) or 'experiment/run'",
        )
    run.flush()  # params and metrics logged so far are what the version records
    return ms.reader.get_run(exper.name, run.id)


def log_model(
    run: Run,
    name: str,
    model: Any,
    flavor: str | None = None,
    *,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Save ``model`` (files, a directory, or an object to pickle) as a new version of
    artifact ``name`` of the run's experiment, and register it as a version of model
    ``name`` naming the run, its data and code."""
    layout.validate_id(name, "model name")
    pickled = not packaging.is_path(model)
    with tempfile.TemporaryDirectory(prefix="aletheia-model-") as tmp:
        path, is_dir, flavor = packaging.stage(model, flavor, Path(tmp))
        record = run.add_artifact(name, path, is_dir=is_dir)
    ms = run.ms
    artifact = ms.artifacts.get(run.exper.name, name, str(record["version"]))
    return registry(ms).register(
        name,
        artifact=artifact,
        run=facts(_view_of(ms, run)),
        flavor=flavor,
        description=description,
        tags=tags,
        extra={"serialization": packaging.PICKLE_SERIALIZATION} if pickled else None,
    )


def register_model(
    ms: Metastore,
    name: str,
    *,
    run: Any,
    artifact: str | ArtifactVersion,
    version: str | None = None,
    flavor: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ModelVersion:
    """Register artifact ``artifact`` (a name: the ``version`` the run saved, default its
    latest; or an :class:`ArtifactVersion`) as a new version of model ``name``."""
    layout.validate_id(name, "model name")
    view = _view_of(ms, run)
    if isinstance(artifact, ArtifactVersion):
        if artifact.experiment != view.experiment:
            raise ValidationError(
                f"artifact {artifact.name!r} belongs to experiment {artifact.experiment!r}, "
                f"run {view.id} to {view.experiment!r}",
                "register an artifact of the run's own experiment",
            )
        found = artifact
    else:
        found = ms.artifacts.get(view.experiment, artifact, version, run=view.id)
    return registry(ms).register(
        name,
        artifact=found,
        run=facts(view),
        flavor=flavor,
        description=description,
        tags=tags,
    )
