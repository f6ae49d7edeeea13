"""Every Firestore path, document id and bucket object name, built in one place.

The hierarchy (see docs/DESIGN.md)::

    Projects/{project}
      Experiments/{exper}
        Runs/{run}
          Metrics/{key}~{chunk}
        Artifacts/{name}
          Versions/{version}
          files/{file}                 (written before artifacts had versions)
        Results/{run}
      Datasets/{name}
        files/{file}
        Versions/{version}
      Files/{sha256}
      Blobs/{sha256}                   who references these bytes (aletheia.data.blobrefs)
        Refs/{ref}
      Metadata/{name}
      Models/{name}                    registered models (aletheia.models): aliases, tags
        Versions/{n}                   one immutable registration: run, artifact, data
      Invites/{email}                  a pending invitation (aletheia.cloud.invites)

Nothing else in aletheia spells a collection name or joins a path: it calls
these functions, so the layout can be read (and changed) here alone. Every id
that comes from a user goes through :func:`validate_id` first.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, unquote

from aletheia.errors import ValidationError

# Collection names, capitalised as in the original aletheia hierarchy.
PROJECTS = "Projects"
EXPERIMENTS = "Experiments"
RUNS = "Runs"
METRICS = "Metrics"
ARTIFACTS = "Artifacts"
ARTIFACT_FILES = "files"
ARTIFACT_VERSIONS = "Versions"
RESULTS = "Results"
DATASETS = "Datasets"
DATASET_FILES = "files"
VERSIONS = "Versions"
FILES = "Files"
METADATA = "Metadata"
BLOBS = "Blobs"
BLOB_REFS = "Refs"
RUN_ARTIFACT_FILES = "ArtifactFiles"
MLFLOW_RUNS = "MlflowRuns"
MODELS = "Models"
MODEL_VERSIONS = "Versions"
LOGGED_MODELS = "LoggedModels"
INVITES = "Invites"

#: Longest id a user may choose. Firestore allows 1,500 bytes; ids also name
#: cache directories and console breadcrumbs, where shorter is kinder.
MAX_ID_LENGTH = 128
#: Longest relative path of a file inside a dataset or artifact.
MAX_RELPATH_LENGTH = 1024
#: Document ids derived from a relative path are hashed beyond this length.
_MAX_ENCODED_ID = 500

_RESERVED_ID = re.compile(r"^__.*__$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# --------------------------------------------------------------------------- validation


def validate_id(value: object, kind: str = "id") -> str:
    """Return ``value`` if it is a safe Firestore document id, else raise.

    ``kind`` names what the id is for ("experiment name", "run id" …) so the
    error tells the user which argument to fix.
    """
    if not isinstance(value, str):
        raise ValidationError(
            f"{kind} must be a string, got {type(value).__name__}", "pass the name as text"
        )
    problem = _id_problem(value)
    if problem:
        raise ValidationError(f"invalid {kind} {value!r}: {problem}", _ID_HINT)
    return value


_ID_HINT = (
    "use letters, digits, spaces and -_.:@+ , at most "
    f"{MAX_ID_LENGTH} characters, no '/', not '.' or '..'"
)


def _id_problem(value: str) -> str | None:
    if not value:
        return "it is empty"
    if value != value.strip():
        return "it starts or ends with white space"
    if len(value) > MAX_ID_LENGTH:
        return f"it is {len(value)} characters long (at most {MAX_ID_LENGTH})"
    if "/" in value or "\\" in value:
        return "it contains a slash"
    if value in (".", ".."):
        return "'.' and '..' are reserved path names"
    if _RESERVED_ID.match(value):
        return "ids of the form __name__ are reserved by Firestore"
    if _has_control_chars(value):
        return "it contains control characters"
    return None


def _has_control_chars(value: str) -> bool:
    if value.isascii():  # the common case, without a lookup per character (10,000-file adds)
        return not value.isprintable()
    return any(unicodedata.category(ch).startswith("C") for ch in value)


def validate_relpath(value: object) -> str:
    """Return a normalised POSIX relative path, refusing anything that could escape.

    Used for files inside datasets and artifacts: no absolute paths, no ``..``
    components, no backslashes, no control characters.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError(f"invalid relative path {value!r}", "give a non-empty path")
    if len(value) > MAX_RELPATH_LENGTH:
        raise ValidationError(
            f"path is {len(value)} characters long (at most {MAX_RELPATH_LENGTH})",
            "shorten the directory structure",
        )
    if _has_control_chars(value):
        raise ValidationError(
            f"invalid relative path {value!r}: it holds a control character (a line break, "
            "a tab, ...)",
            "rename the file or folder",
        )
    if "\\" in value:
        raise ValidationError(
            f"invalid relative path {value!r}: it holds a backslash, a separator on Windows",
            "rename the file or folder, or give the path with '/' separators",
        )
    if value.startswith("/"):
        raise ValidationError(
            f"invalid relative path {value!r}", "use a path relative to the dataset root"
        )
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValidationError(
            f"invalid relative path {value!r}: it escapes its root", "remove '..' components"
        )
    return "/".join(parts)


def validate_sha256(value: str) -> str:
    """Return ``value`` if it is a lower-case hex sha256 digest, else raise."""
    if not _SHA256.match(value):
        raise ValidationError(f"not a sha256 digest: {value!r}", "expected 64 hex digits")
    return value


# --------------------------------------------------------------------------- documents


def _join(*parts: str) -> str:
    return "/".join(parts)


def project(p: str) -> str:
    """``Projects/{p}``."""
    return _join(PROJECTS, validate_id(p, "project name"))


def experiments(p: str) -> str:
    """The ``Experiments`` collection of a project."""
    return _join(project(p), EXPERIMENTS)


def experiment(p: str, e: str) -> str:
    """``Projects/{p}/Experiments/{e}``."""
    return _join(experiments(p), validate_id(e, "experiment name"))


def runs(p: str, e: str) -> str:
    """The ``Runs`` collection of an experiment."""
    return _join(experiment(p, e), RUNS)


def run(p: str, e: str, r: str) -> str:
    """``.../Experiments/{e}/Runs/{r}``."""
    return _join(runs(p, e), validate_id(r, "run id"))


def metrics(p: str, e: str, r: str) -> str:
    """The ``Metrics`` collection of a run (bounded chunk documents)."""
    return _join(run(p, e, r), METRICS)


def metric_chunk(p: str, e: str, r: str, key: str, chunk: int) -> str:
    """``.../Runs/{r}/Metrics/{key}~{chunk}``: one bounded slice of a metric series."""
    return _join(metrics(p, e, r), metric_chunk_id(key, chunk))


def metric_chunk_id(key: str, chunk: int) -> str:
    """Document id of chunk ``chunk`` of metric ``key``.

    Metric names may contain ``/`` (``train/loss``), which a document id may
    not, so the key is percent-encoded; the chunk number is zero-padded so ids
    sort in step order in the console.
    """
    if chunk < 0:
        raise ValidationError(f"negative metric chunk {chunk}")
    return f"{quote(key, safe=' ')}~{chunk:06d}"


def parse_metric_chunk_id(doc_id: str) -> tuple[str, int]:
    """Inverse of :func:`metric_chunk_id`."""
    key, _, chunk = doc_id.rpartition("~")
    return unquote(key), int(chunk)


def artifacts(p: str, e: str) -> str:
    """The ``Artifacts`` collection of an experiment."""
    return _join(experiment(p, e), ARTIFACTS)


def artifact(p: str, e: str, name: str) -> str:
    """``.../Experiments/{e}/Artifacts/{name}``."""
    return _join(artifacts(p, e), validate_id(name, "artifact name"))


def artifact_files(p: str, e: str, name: str) -> str:
    """The ``files`` collection of an artifact."""
    return _join(artifact(p, e, name), ARTIFACT_FILES)


def artifact_file(p: str, e: str, name: str, relpath: str) -> str:
    """One file of an artifact, keyed by its relative path."""
    return _join(artifact_files(p, e, name), file_doc_id(relpath))


def artifact_versions(p: str, e: str, name: str) -> str:
    """The ``Versions`` collection of an artifact: one document per save."""
    return _join(artifact(p, e, name), ARTIFACT_VERSIONS)


def artifact_version(p: str, e: str, name: str, version: str) -> str:
    """``.../Artifacts/{name}/Versions/{version}``."""
    return _join(artifact_versions(p, e, name), validate_id(version, "artifact version"))


def results(p: str, e: str) -> str:
    """The ``Results`` collection of an experiment (flat, for leaderboards)."""
    return _join(experiment(p, e), RESULTS)


def result(p: str, e: str, r: str) -> str:
    """``.../Experiments/{e}/Results/{r}``."""
    return _join(results(p, e), validate_id(r, "run id"))


def run_artifact_files(p: str, e: str, r: str) -> str:
    """``.../Runs/{r}/ArtifactFiles``: files logged to one run by path (MLflow artifacts)."""
    return _join(run(p, e, r), RUN_ARTIFACT_FILES)


def run_artifact_file(p: str, e: str, r: str, relpath: str) -> str:
    """``.../Runs/{r}/ArtifactFiles/{file}``: one file (path, sha256, size, blob)."""
    return _join(run_artifact_files(p, e, r), file_doc_id(relpath))


def mlflow_runs(p: str) -> str:
    """``Projects/{p}/MlflowRuns``: MLflow run id -> the experiment holding the run."""
    return _join(project(p), MLFLOW_RUNS)


def mlflow_run(p: str, run_id: str) -> str:
    """``Projects/{p}/MlflowRuns/{run_id}``."""
    return _join(mlflow_runs(p), validate_id(run_id, "run id"))


def logged_models(p: str) -> str:
    """``Projects/{p}/LoggedModels``: MLflow 3 logged models, by model id (``m-<hex>``)."""
    return _join(project(p), LOGGED_MODELS)


def logged_model(p: str, model_id: str) -> str:
    """``Projects/{p}/LoggedModels/{model_id}``."""
    return _join(logged_models(p), validate_id(model_id, "logged model id"))


def datasets(p: str) -> str:
    """The ``Datasets`` collection of a project."""
    return _join(project(p), DATASETS)


def dataset(p: str, name: str) -> str:
    """``Projects/{p}/Datasets/{name}``."""
    return _join(datasets(p), validate_id(name, "dataset name"))


def dataset_files(p: str, name: str) -> str:
    """The ``files`` collection of a dataset (the latest manifest)."""
    return _join(dataset(p, name), DATASET_FILES)


def dataset_file(p: str, name: str, relpath: str) -> str:
    """One file of a dataset, keyed by its relative path."""
    return _join(dataset_files(p, name), file_doc_id(relpath))


def dataset_versions(p: str, name: str) -> str:
    """The ``Versions`` collection of a dataset."""
    return _join(dataset(p, name), VERSIONS)


def dataset_version(p: str, name: str, version: str) -> str:
    """``Projects/{p}/Datasets/{name}/Versions/{version}``."""
    return _join(dataset_versions(p, name), validate_id(version, "dataset version"))


def files(p: str) -> str:
    """The content-addressed ``Files`` registry of a project."""
    return _join(project(p), FILES)


def file(p: str, sha256: str) -> str:
    """``Projects/{p}/Files/{sha256}``: schema, statistics and status of some bytes."""
    return _join(files(p), validate_sha256(sha256))


def blobs(p: str) -> str:
    """The ``Blobs`` registry of a project: who references each content-addressed blob."""
    return _join(project(p), BLOBS)


def blob_record(p: str, sha256: str) -> str:
    """``Projects/{p}/Blobs/{sha256}``: the holders of some bytes, summarised."""
    return _join(blobs(p), validate_sha256(sha256))


def blob_refs(p: str, sha256: str) -> str:
    """The ``Refs`` collection of a blob: one document per holder."""
    return _join(blob_record(p, sha256), BLOB_REFS)


def blob_ref(p: str, sha256: str, holder: str) -> str:
    """``.../Blobs/{sha256}/Refs/{ref}``: one holder of the blob (``holder`` is any text)."""
    return _join(blob_refs(p, sha256), blob_ref_id(holder))


def blob_ref_id(holder: str) -> str:
    """Document id of a holder such as ``artifact:exp/model``: percent-encoded, hashed if long."""
    if not holder:
        raise ValidationError("empty blob holder")
    encoded = quote(holder, safe=" :@")
    if (
        len(encoded) <= _MAX_ENCODED_ID
        and not _RESERVED_ID.match(encoded)
        and encoded not in (".", "..")
    ):
        return encoded
    return "h-" + hashlib.sha256(holder.encode()).hexdigest()


def metadata(p: str) -> str:
    """The free-form ``Metadata`` collection of a project."""
    return _join(project(p), METADATA)


def metadata_doc(p: str, name: str) -> str:
    """``Projects/{p}/Metadata/{name}``."""
    return _join(metadata(p), validate_id(name, "metadata name"))


def models(p: str) -> str:
    """The ``Models`` collection of a project: the model registry."""
    return _join(project(p), MODELS)


def model(p: str, name: str) -> str:
    """``Projects/{p}/Models/{name}``: a registered model (aliases, tags, description)."""
    return _join(models(p), validate_id(name, "model name"))


def model_versions(p: str, name: str) -> str:
    """The ``Versions`` collection of a registered model."""
    return _join(model(p, name), MODEL_VERSIONS)


def model_version(p: str, name: str, version: int) -> str:
    """``Projects/{p}/Models/{name}/Versions/{n}``: version ``n`` (1, 2, 3 ...) of a model."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError(
            f"invalid model version {version!r}", "model versions are whole numbers from 1"
        )
    return _join(model_versions(p, name), str(version))


def invites(p: str) -> str:
    """The ``Invites`` collection of a project: pending invitations, by email."""
    return _join(project(p), INVITES)


def invite(p: str, email: str) -> str:
    """``Projects/{p}/Invites/{email}``: the invitation of one email address.

    The id is the address itself, lower-cased (:func:`validate_email`), so the
    rules can find the invitation of the signed-in user from their token's email.
    """
    return _join(invites(p), validate_email(email))


#: Longest email address (the limit of an SMTP path, RFC 5321).
MAX_EMAIL_LENGTH = 254
_EMAIL = re.compile(r"^[^@\s/]+@[^@\s/]+$")


def validate_email(value: object) -> str:
    """Return ``value`` if it is a lower-case email address usable as a document id, else raise.

    Lower case because Firebase Auth treats addresses case-insensitively and the
    rules compare an invitation with the token's email lower-cased; callers
    normalise first (``aletheia.cloud.invites.normalize_email``).
    """
    hint = "give an address like ana@example.com (no spaces or '/')"
    if not isinstance(value, str):
        raise ValidationError(f"email must be a string, got {type(value).__name__}", hint)
    if (
        not _EMAIL.match(value)
        or len(value) > MAX_EMAIL_LENGTH
        or _has_control_chars(value)
        or value != value.lower()
    ):
        raise ValidationError(f"invalid email address {value!r}", hint)
    return value


def dataset_ref(name: str, version: str) -> str:
    """``name@version``: how a run records (and queries find) one dataset version."""
    return f"{validate_id(name, 'dataset name')}@{validate_id(version, 'dataset version')}"


def file_doc_id(relpath: str) -> str:
    """Document id for a file inside a dataset or artifact.

    The path is percent-encoded so it stays readable in the console
    (``train%2Fpart-0.csv``); very long paths fall back to a hash.
    """
    clean = validate_relpath(relpath)
    encoded = quote(clean, safe=" ")
    if len(encoded) <= _MAX_ENCODED_ID and not _RESERVED_ID.match(encoded):
        return encoded
    return "h-" + hashlib.sha256(clean.encode()).hexdigest()


# --------------------------------------------------------------------------- bucket objects

#: Object-name prefixes under a project, in the bucket.
BLOB_PREFIX = "sha256"
SAMPLE_PREFIX = "samples"
TMP_PREFIX = "tmp"

_BLOB_NAME = re.compile(r"^(?P<project>[^/]+)/sha256/(?P<a>[0-9a-f]{2})/(?P<b>[0-9a-f]{62})$")


def blob_name(p: str, sha256: str) -> str:
    """Object name of content-addressed bytes: ``{p}/sha256/ab/cdef…``.

    The project prefix keeps projects apart when they share a bucket; the
    two-character shard keeps listings cheap, as in DVC's cache.
    """
    digest = validate_sha256(sha256)
    return _join(validate_id(p, "project name"), BLOB_PREFIX, digest[:2], digest[2:])


def sample_blob_name(p: str, sha256: str) -> str:
    """Object name of the row sample the function derives from a data file."""
    digest = validate_sha256(sha256)
    return _join(validate_id(p, "project name"), SAMPLE_PREFIX, f"{digest}.jsonl")


def profile_blob_name(p: str, sha256: str) -> str:
    """Object name of a data file's full profile (every column), next to its sample."""
    digest = validate_sha256(sha256)
    return _join(validate_id(p, "project name"), SAMPLE_PREFIX, f"{digest}.profile.json")


@dataclass(frozen=True)
class BlobRef:
    """A parsed content-addressed object name."""

    project: str
    sha256: str


def parse_blob_name(name: str) -> BlobRef | None:
    """Return the project and sha256 of a content-addressed object, else ``None``.

    The storage function uses this to ignore every other object in the
    bucket (samples it wrote itself, temporary uploads, foreign files).
    """
    match = _BLOB_NAME.match(name)
    if not match or _id_problem(match["project"]):
        return None
    return BlobRef(match["project"], match["a"] + match["b"])
