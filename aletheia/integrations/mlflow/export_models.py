"""MLflow 3 logged models in an export to MLflow's file-store layout.

Where the file store keeps them (:mod:`aletheia.integrations.mlflow.export`
writes the rest): ``<exp>/models/<model_id>/{meta.yaml, params/, tags/,
metrics/, artifacts/}``, and a run's outputs and model inputs under
``<run>/outputs/<model_id>/meta.yaml`` and ``<run>/inputs/<id>/meta.yaml``.
A model's files are its artifact version's files; its source run id is the
run's exported id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from google.cloud import firestore

from aletheia.cloud import layout, queries

#: ``LoggedModelStatus`` as the file store's meta.yaml stores it.
_STATUS = {"UNSPECIFIED": 0, "PENDING": 1, "READY": 2, "FAILED": 3}

Yaml = Callable[[Path, Mapping[str, Any]], None]
Files = Callable[[Path, Mapping[str, str]], None]


def logged_models(db: firestore.Client, project: str, exper: str) -> list[dict[str, Any]]:
    """The logged-model documents of experiment ``exper``, by id."""
    docs = [
        s.to_dict() or {} for s in queries.logged_models_of_experiment(db, project, exper).stream()
    ]
    return sorted(docs, key=lambda d: str(d["model_id"]))


def write_model(
    model: Mapping[str, Any],
    exp_dir: Path,
    run_id_of: Callable[[str], str],
    write_yaml: Yaml,
    write_files: Files,
) -> Path:
    """Write one model's metadata; returns the directory its files go to (``artifacts/``)."""
    model_id = layout.validate_id(str(model["model_id"]), "logged model id")
    model_dir = exp_dir / "models" / model_id
    art_dir = model_dir / "artifacts"
    source = model.get("source_run_id")
    write_yaml(
        model_dir / "meta.yaml",
        {
            "artifact_location": art_dir.resolve().as_uri(),
            "creation_timestamp": model.get("creation_timestamp"),
            "experiment_id": exp_dir.name,
            "last_updated_timestamp": model.get("last_updated_timestamp"),
            "lifecycle_stage": str(model.get("lifecycle_stage") or "active"),
            "model_id": model_id,
            "model_type": model.get("model_type"),
            "name": model.get("name"),
            "source_run_id": run_id_of(str(source)) if source else None,
            "status": _STATUS.get(str(model.get("status")), 0),
            "status_message": model.get("status_message"),
        },
    )
    write_files(model_dir / "params", {k: str(v) for k, v in (model.get("params") or {}).items()})
    write_files(model_dir / "tags", {k: str(v) for k, v in (model.get("tags") or {}).items()})
    lines: dict[str, str] = {}
    for key, groups in (model.get("metrics") or {}).items():
        rows = []
        for p in groups.values():
            row = f"{p['timestamp']} {p['value']} {p['step']} {run_id_of(str(p['run_id']))}"
            if p.get("dataset_name") is not None and p.get("dataset_digest") is not None:
                row += f" {p['dataset_name']} {p['dataset_digest']}"
            rows.append(row)
        lines[key] = "\n".join(rows) + "\n"
    write_files(model_dir / "metrics", lines)
    art_dir.mkdir(parents=True, exist_ok=True)
    return art_dir


def write_run_side(run_dir: Path, run_id: str, doc: Mapping[str, Any], write_yaml: Yaml) -> None:
    """A run's outputs (``log_outputs``) and model inputs, as the file store keeps them."""
    for model_id, step in (doc.get("mlflow_outputs") or {}).items():
        write_yaml(
            run_dir / "outputs" / layout.validate_id(model_id, "logged model id") / "meta.yaml",
            {
                "source_type": "RUN_OUTPUT",
                "source_id": model_id,
                "destination_type": "MODEL_OUTPUT",
                "destination_id": model_id,
                "tags": {},
                "step": int(step),
            },
        )
    for model_id in doc.get("mlflow_model_inputs") or {}:
        input_id = hashlib.md5(f"{model_id}{run_id}".encode(), usedforsecurity=False).hexdigest()
        write_yaml(
            run_dir / "inputs" / input_id / "meta.yaml",
            {
                "source_type": "MODEL",
                "source_id": model_id,
                "destination_type": "RUN",
                "destination_id": model_id,
                "tags": {},
            },
        )


__all__ = ["logged_models", "write_model", "write_run_side"]
