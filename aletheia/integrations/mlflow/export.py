"""Export runs to MLflow's file-store layout, readable by ``mlflow ui`` and ``MlflowClient``.

``DIR/<exp_id>/meta.yaml`` and, per run,
``DIR/<exp_id>/<run_id>/{meta.yaml, params/, metrics/, tags/, artifacts/}``:

* experiment ids: ``0`` for ``Default``; otherwise the experiment's name when
  it is a valid MLflow id (letters, digits, ``_``, ``-``) and not ``models``
  (the folder of the file store's model registry), else ``x`` + a hash of
  the name;
* run ids: MLflow-created runs keep their 32-hex id; other aletheia runs get a
  deterministic uuid5 of ``project/experiment/run`` (MLflow looks runs up by
  id alone, and aletheia's ``1, 2, 3`` repeat across experiments); the
  original id is kept in tag ``aletheia.run``;
* params (params and hyper-params) and tags as one file per key, metrics as
  ``timestamp value step`` lines from the full chunked series; every run gets
  ``params/``, ``metrics/``, ``tags/`` and ``artifacts/`` even when empty (the
  file store ignores a run directory that lacks one: "Run ... not found");
* names aletheia accepts but the file store refuses (characters outside
  letters, digits and ``_ - . / : space``, or a name that is both a file and a directory,
  like ``loss`` next to ``loss/train``) are renamed, and tag
  ``aletheia.renamed_keys`` maps each new name back to the original;
* deleted experiments go to ``.trash/`` as the file store keeps them; a run's
  status is the one readers see (a run whose heartbeat stopped is FAILED);
* dataset inputs (``mlflow.log_input``) as the file store keeps them;
* MLflow 3 logged models, their files, and runs' outputs and model inputs, as
  the file store keeps them (:mod:`aletheia.integrations.mlflow.export_models`);
* artifacts: the files logged through MLflow, and the files of aletheia
  artifacts this run produced (under ``artifacts/<artifact name>/``),
  downloaded from the blob store.

Every read goes through the read interface (:mod:`aletheia.tracking.readapi`).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud import firestore

from aletheia.cloud import layout
from aletheia.errors import AletheiaError, NotFoundError
from aletheia.integrations.mlflow import export_models
from aletheia.tracking.firestore_reader import FirestoreReader
from aletheia.tracking.readapi import thaw
from aletheia.tracking.runmodel import RunRef, effective_status

_MLFLOW_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,63}$")
#: Characters MLflow's file store accepts in param, metric and tag names (not on Windows: ``:``).
_NOT_IN_MLFLOW_NAME = re.compile(r"[^/\w.\- :]")
_RENAMED_TAG = "aletheia.renamed_keys"
_TRASH = ".trash"
#: Folders at a file store's root that are not experiments (its model registry's).
_RESERVED_ROOT_FOLDERS = {"models"}
_UUID_HEX = re.compile(r"^[0-9a-f]{32}$")
# MLflow's RunStatus enum values as stored in a file store's meta.yaml.
_STATUS = {"running": 1, "finished": 3, "failed": 4, "crashed": 4, "interrupted": 5}
_SOURCE_LOCAL = 4
_PARENT_TAG = "mlflow.parentRunId"


@dataclass
class ExportSummary:
    """What an export wrote."""

    experiments: int = 0
    runs: int = 0
    metric_points: int = 0
    artifact_files: int = 0
    logged_models: int = 0


def export_experiment_id(name: str) -> str:
    """The MLflow experiment id an aletheia experiment gets in the export."""
    if name == "Default":
        return "0"
    if _MLFLOW_ID.match(name) and name not in _RESERVED_ROOT_FOLDERS:
        return name
    return "x" + hashlib.sha256(name.encode()).hexdigest()[:16]


def export_run_id(project: str, experiment: str, run: str) -> str:
    """The MLflow run id an aletheia run gets in the export (stable across exports)."""
    if _UUID_HEX.match(run):
        return run
    return uuid.uuid5(uuid.NAMESPACE_URL, f"aletheia://{project}/{experiment}/{run}").hex


def file_store_names(keys: Iterable[str]) -> dict[str, str]:
    """``{key: name}``: a name MLflow's file store reads back for each key, all distinct.

    A valid key keeps its name. Others get their bad characters replaced by
    ``_`` and empty or dot path segments dropped; a name that would collide
    (the same name, or a file where another name needs a directory) gets
    ``_`` and a hash of the original appended. Deeper names are placed first,
    so ``loss/train`` stays and ``loss`` is the one renamed.
    """
    names: dict[str, str] = {}
    files: set[str] = set()
    dirs: set[str] = set()
    for key in sorted(keys, key=lambda k: (-k.count("/"), k)):
        parts = _NOT_IN_MLFLOW_NAME.sub("_", key).split("/")
        name = "/".join(p if p != ".." else "__" for p in parts if p not in ("", ".")) or "_"
        parents = [name.rsplit("/", n)[0] for n in range(1, name.count("/") + 1)]
        if name in files or name in dirs or any(p in files for p in parents):
            name = f"{name}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
        names[key] = name
        files.add(name)
        dirs.update(parents)
    return names


def _ms(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else None


def _yaml(path: Path, data: Mapping[str, Any]) -> None:
    try:
        import yaml
    except ImportError as exc:  # PyYAML comes with the mlflow extra
        raise AletheiaError(
            "exporting to MLflow needs PyYAML", "pip install 'aletheia[mlflow]'"
        ) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(data), default_flow_style=False))


def _safe_key_path(root: Path, key: str) -> Path:
    """``root/key`` (MLflow keys may hold ``/``: sub-directories), refusing escapes."""
    return root / layout.validate_relpath(key)


class MlflowExporter:
    """Writes one project's experiments into an MLflow file store at ``dest``."""

    def __init__(self, db: firestore.Client, blobstore: Any, project: str, dest: Path) -> None:
        self.db = db
        self.blobs = blobstore
        self.project = layout.validate_id(project, "project name")
        self.dest = Path(dest)
        self.summary = ExportSummary()
        self.reader = FirestoreReader(db, self.project)

    def run(self, experiments: Iterable[str] | None = None) -> ExportSummary:
        """Export ``experiments`` (default: every experiment of the project)."""
        docs = {e.name: thaw(e.doc) for e in self.reader.experiments()}
        names = list(experiments) if experiments is not None else sorted(docs)
        for name in names:
            if name not in docs:
                raise NotFoundError(
                    f"no experiment {name!r} in project {self.project!r}",
                    "list them with `aletheia runs list`",
                )
            self._experiment(name, docs[name])
        return self.summary

    def _experiment(self, name: str, doc: Mapping[str, Any]) -> None:
        exp_id = export_experiment_id(name)
        stage = str(doc.get("lifecycle_stage") or "active")
        # The file store keeps deleted experiments (and finds their runs) under .trash/.
        exp_dir = self.dest / _TRASH / exp_id if stage == "deleted" else self.dest / exp_id
        created = _ms(doc.get("created_at"))
        _yaml(
            exp_dir / "meta.yaml",
            {
                "artifact_location": (exp_dir.resolve()).as_uri(),
                "creation_time": created,
                "experiment_id": exp_id,
                "last_update_time": created,
                "lifecycle_stage": stage,
                "name": name,
            },
        )
        _write_files(exp_dir / "tags", _texts(doc.get("mlflow_tags")))
        self.summary.experiments += 1
        models = export_models.logged_models(self.db, self.project, name)
        model_ids = {str(m["model_id"]) for m in models}
        artifacts = {  # a logged model's files are exported as the model's, not the run's
            run: [(path, sha) for path, sha in files if path.split("/")[0] not in model_ids]
            for run, files in self._aletheia_artifacts(name).items()
        }
        for view in self.reader.search_runs([name], order_by="attributes.run_id"):
            self._run(name, exp_dir, thaw(view.doc), artifacts.get(view.id, []))
        for model in models:
            self._model(name, exp_dir, model)

    def _model(self, exper: str, exp_dir: Path, model: Mapping[str, Any]) -> None:
        from aletheia.data.artifacts import ArtifactStore

        art_dir = export_models.write_model(
            model, exp_dir, lambda run: export_run_id(self.project, exper, run), _yaml, _write_files
        )
        art = model.get("artifact")
        if art:
            store = ArtifactStore(self.db, self.blobs, None, self.project)
            version = store.get(str(art["experiment"]), str(art["name"]), str(art["version"]))
            for entry in version.files:
                self._download(entry.sha256, _safe_key_path(art_dir, entry.path))
        self.summary.logged_models += 1

    def _run(
        self, exper: str, exp_dir: Path, doc: Mapping[str, Any], files: list[tuple[str, str]]
    ) -> None:
        run = str(doc["run"])
        run_id = export_run_id(self.project, exper, run)
        run_dir = exp_dir / run_id
        art_dir = run_dir / "artifacts"
        tags = _texts(doc.get("mlflow_tags"))
        parent = doc.get("parent") or {}
        if parent.get("run"):
            tags[_PARENT_TAG] = export_run_id(
                self.project, str(parent.get("experiment") or exper), str(parent["run"])
            )
        run_name = str(doc.get("run_name") or run)
        tags.setdefault("mlflow.runName", run_name)
        tags["aletheia.run"] = f"{exper}/{run}"
        _yaml(
            run_dir / "meta.yaml",
            {
                "artifact_uri": art_dir.resolve().as_uri(),
                "deleted_time": None,
                "end_time": _ms(doc.get("ended_at")),
                "entry_point_name": "",
                "experiment_id": exp_dir.name,
                "lifecycle_stage": str(doc.get("lifecycle_stage") or "active"),
                "run_id": run_id,
                "run_name": run_name,
                "run_uuid": run_id,
                "source_name": "",
                "source_type": _SOURCE_LOCAL,
                "source_version": str((doc.get("git") or {}).get("commit") or ""),
                "start_time": _ms(doc.get("started_at")),
                "status": _STATUS.get(effective_status(doc), 1),
                "tags": [],
                "user_id": str(doc.get("user_id") or ""),
            },
        )
        params = _texts({**(doc.get("hyper_params") or {}), **(doc.get("params") or {})})
        series = self._metrics(exper, run)
        renamed: dict[str, dict[str, str]] = {}
        params = _renamed(params, "params", renamed)
        series = _renamed(series, "metrics", renamed)
        tags = _renamed(tags, "tags", renamed)
        if renamed:
            tags[_RENAMED_TAG] = json.dumps(renamed, sort_keys=True)
        _write_files(run_dir / "params", params)
        _write_files(run_dir / "metrics", {k: "\n".join(v) + "\n" for k, v in series.items()})
        _write_files(run_dir / "tags", tags)
        self.summary.metric_points += sum(len(v) for v in series.values())
        self._inputs(exp_dir, run_dir, run_id, doc.get("mlflow_inputs") or {})
        export_models.write_run_side(run_dir, run_id, doc, _yaml)
        art_dir.mkdir(parents=True, exist_ok=True)
        self._mlflow_artifacts(exper, run, art_dir)
        for relpath, sha256 in files:
            self._download(sha256, _safe_key_path(art_dir, relpath))
        self.summary.runs += 1

    def _inputs(self, exp_dir: Path, run_dir: Path, run_id: str, inputs: Mapping[str, Any]) -> None:
        """``mlflow.log_input`` datasets, where the file store keeps them: the dataset
        under ``<exp>/datasets/<md5(name+digest)>``, the input under ``<run>/inputs/``."""
        for entry in inputs.values():
            name, digest = str(entry.get("name")), str(entry.get("digest"))
            dataset_id = _md5(name, digest)
            dataset = {k: entry.get(k) for k in ("name", "digest", "source_type", "source")}
            dataset.update(schema=entry.get("schema"), profile=entry.get("profile"))
            _yaml(exp_dir / "datasets" / dataset_id / "meta.yaml", dataset)
            _yaml(
                run_dir / "inputs" / _md5(dataset_id, run_id) / "meta.yaml",
                {
                    "source_type": "DATASET",
                    "source_id": dataset_id,
                    "destination_type": "RUN",
                    "destination_id": run_id,
                    "tags": _texts(entry.get("tags")),
                },
            )

    def _metrics(self, exper: str, run: str) -> dict[str, list[str]]:
        """Every point of every series, in order: ``{key: ["timestamp value step", ...]}``."""
        series = self.reader.metric_histories(RunRef(self.project, exper, run))
        return {
            key: [f"{p.epoch_ms} {p.value} {p.step}" for p in points]
            for key, points in series.items()
        }

    def _mlflow_artifacts(self, exper: str, run: str, art_dir: Path) -> None:
        for entry in self.reader.run_files(RunRef(self.project, exper, run)):
            self._download(str(entry["sha256"]), _safe_key_path(art_dir, str(entry["path"])))

    def _aletheia_artifacts(self, exper: str) -> dict[str, list[tuple[str, str]]]:
        """run id -> [(artifact name/path, sha256)] of every artifact version a run saved."""
        from aletheia.data.artifacts import ArtifactStore

        return ArtifactStore(self.db, self.blobs, None, self.project).files_by_run(exper)

    def _download(self, sha256: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as fh:
            self.blobs.download_to(sha256, fh)
        self.summary.artifact_files += 1


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _md5(*parts: str) -> str:
    """The file store's ids of datasets and inputs (an md5 of the parts, not a checksum)."""
    md5 = hashlib.md5(usedforsecurity=False)
    for part in parts:
        md5.update(part.encode("utf-8"))
    return md5.hexdigest()


def _texts(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


def _renamed(values: dict[str, Any], kind: str, renamed: dict[str, dict[str, str]]) -> dict:
    """``values`` under file-store names; what changed is noted in ``renamed[kind]``."""
    names = file_store_names(values)
    changes = {new: old for old, new in names.items() if new != old}
    if changes:
        renamed[kind] = changes
    return {names[k]: v for k, v in values.items()}


def _write_files(folder: Path, values: Mapping[str, str]) -> None:
    """One file per key under ``folder``, which exists even when there is none."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, text in values.items():
        _write(_safe_key_path(folder, key), text)


def export_mlflow(
    db: firestore.Client,
    blobstore: Any,
    project: str,
    dest: Path,
    experiments: Iterable[str] | None = None,
) -> ExportSummary:
    """Write ``experiments`` of ``project`` (default all) as an MLflow file store at ``dest``."""
    return MlflowExporter(db, blobstore, project, dest).run(experiments)


__all__ = [
    "ExportSummary",
    "MlflowExporter",
    "export_experiment_id",
    "export_mlflow",
    "export_run_id",
    "file_store_names",
]
