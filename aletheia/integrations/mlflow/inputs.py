"""MLflow run inputs and outputs on an aletheia run document: datasets and logged models.

A run's inputs are the map ``mlflow_inputs`` of its document, one entry per
dataset (keyed by a hash of its name and digest) holding MLflow's dataset
description and the input's tags (``mlflow.data.context`` ...). A map, not a
list, so that logging the same dataset again merges into its entry, through
the run's writer or a direct merge alike. The data itself is not copied:
aletheia's own datasets are recorded with ``run.get_dataset``.

Logged models a run produced (``log_outputs``) are the map
``mlflow_outputs {model_id: step}``; those it used, ``mlflow_model_inputs
{model_id: true}`` (:mod:`aletheia.integrations.mlflow.logged_models`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    RunOutputs,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from aletheia.tracking import validation

#: What one dataset description may take of the run document (Firestore's limit is 1 MiB).
MAX_DATASET_BYTES = 256 * 1024
FIELD = "mlflow_inputs"
#: Run document fields: the models a run produced (``{model_id: step}``) and used.
OUTPUTS_FIELD = "mlflow_outputs"
MODEL_INPUTS_FIELD = "mlflow_model_inputs"


def inputs_field(datasets: Iterable[DatasetInput]) -> dict[str, Any]:
    """The ``mlflow_inputs`` entries to merge into the run document for ``datasets``."""
    entries: dict[str, Any] = {}
    for item in datasets:
        ds = item.dataset
        entry: dict[str, Any] = {
            "name": ds.name,
            "digest": ds.digest,
            "source_type": ds.source_type,
            "source": ds.source,
            "schema": ds.schema,
            "profile": ds.profile,
            "tags": validation.validate_params(
                {t.key: str(t.value) for t in item.tags or []}, "dataset input tags"
            ),
        }
        size = sum(len(str(v or "")) for v in entry.values() if not isinstance(v, dict))
        if size > MAX_DATASET_BYTES:
            raise MlflowException(
                f"dataset {ds.name!r} is described by {size} bytes (schema, profile, source); "
                f"aletheia keeps at most {MAX_DATASET_BYTES} per dataset input",
                error_code=INVALID_PARAMETER_VALUE,
            )
        key = entry_key(ds)
        old = entries.get(key)
        if old is not None:
            entry["tags"] = {**old["tags"], **entry["tags"]}
        entries[key] = entry
    return entries


def entry_key(dataset: Dataset) -> str:
    """The key of a dataset's entry in ``mlflow_inputs``: its name and digest, hashed."""
    return hashlib.sha256(f"{dataset.name}\0{dataset.digest}".encode()).hexdigest()[:24]


def dataset_inputs(doc: Mapping[str, Any]) -> list[DatasetInput]:
    """The run's dataset inputs as MLflow entities (for ``get_run``/``search_runs``)."""
    out = []
    for entry in (doc.get(FIELD) or {}).values():
        dataset = Dataset(
            name=str(entry.get("name")),
            digest=str(entry.get("digest")),
            source_type=str(entry.get("source_type")),
            source=str(entry.get("source")),
            schema=entry.get("schema"),
            profile=entry.get("profile"),
        )
        tags = [InputTag(k, str(v)) for k, v in (entry.get("tags") or {}).items()]
        out.append(DatasetInput(dataset, tags))
    return sorted(out, key=lambda d: (d.dataset.name, d.dataset.digest))


def run_outputs(doc: Mapping[str, Any]) -> RunOutputs:
    """The models a run produced (``Run.outputs``)."""
    found = doc.get(OUTPUTS_FIELD) or {}
    return RunOutputs([LoggedModelOutput(m, int(step)) for m, step in sorted(found.items())])


def model_inputs(doc: Mapping[str, Any]) -> list[LoggedModelInput]:
    """The logged models a run used (``Run.inputs.model_inputs``)."""
    return [LoggedModelInput(m) for m in sorted(doc.get(MODEL_INPUTS_FIELD) or {})]


__all__ = [
    "FIELD",
    "MAX_DATASET_BYTES",
    "MODEL_INPUTS_FIELD",
    "OUTPUTS_FIELD",
    "dataset_inputs",
    "entry_key",
    "inputs_field",
    "model_inputs",
    "run_outputs",
]
