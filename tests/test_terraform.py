"""terraform/ checked offline: structure (python-hcl2), formatting, and a checkov scan.

The google provider cannot be downloaded here, so ``terraform validate`` and
``plan`` are out of reach (tests/test_terraform_schema.py checks arguments
against the provider's published schema instead); these tests check that the deployment has every
part the README promises and that each part points at the repository's own
files (rules, indexes, function source), then run ``terraform fmt -check``
and checkov (from its own venv, ``make checkov`` builds it; ``make test``
depends on it).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import hcl2
import pytest

from aletheia.cloud import config, layout
from aletheia.function import downloads

ROOT = Path(__file__).resolve().parents[1]
TF = ROOT / "terraform"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def _clean(value: Any) -> Any:
    """python-hcl2 keeps quotes and block markers; drop them for readable asserts."""
    if isinstance(value, dict):
        return {
            _clean(k): _clean(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse() -> dict[str, Any]:
    config_: dict[str, Any] = {
        "resource": {},
        "data": {},
        "locals": {},
        "output": {},
        "variable": {},
    }
    for path in sorted(TF.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            doc = _clean(hcl2.load(handle))
        for block in doc.get("resource", []) + doc.get("data", []):
            kind = "resource" if block in doc.get("resource", []) else "data"
            for rtype, named in block.items():
                for name, body in named.items():
                    config_[kind][f"{rtype}.{name}"] = body
        for block in doc.get("locals", []):
            config_["locals"].update(block)
        for key in ("output", "variable"):
            for block in doc.get(key, []):
                config_[key].update(block)
    return config_


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    return _parse()


def _one(block: Any) -> dict[str, Any]:
    assert isinstance(block, list) and len(block) == 1, block
    return block[0]


def _module_path(expr: str) -> Path:
    """``"${path.module}/../x"`` -> the file it names in the checkout."""
    match = re.search(r"\$\{path\.module\}/([^\"]+)", expr)
    assert match, expr
    return (TF / match.group(1)).resolve()


# --------------------------------------------------------------------------- structure


def test_required_apis(tf: dict[str, Any]) -> None:
    services = tf["locals"]["services"]
    for api in (
        "firestore",
        "storage",
        "cloudfunctions",
        "run",
        "cloudbuild",
        "eventarc",
        "pubsub",
        "firebaserules",
        "artifactregistry",
        "identitytoolkit",
        "securetoken",
        "apikeys",
    ):
        assert f"{api}.googleapis.com" in services
    assert tf["resource"]["google_project_service.apis"]["for_each"] == "${local.services}"


def test_firestore_native_with_the_repos_rules(tf: dict[str, Any]) -> None:
    db = tf["resource"]["google_firestore_database.main"]
    assert (db["name"], db["type"]) == ("(default)", "FIRESTORE_NATIVE")
    assert _module_path(tf["locals"]["rules_file"]) == ROOT / "firestore.rules"
    files = _one(_one(tf["resource"]["google_firebaserules_ruleset.firestore"]["source"])["files"])
    assert files["content"] == "${file(local.rules_file)}"
    release = tf["resource"]["google_firebaserules_release.firestore"]
    assert release["name"] == "cloud.firestore"
    assert release["ruleset_name"] == "${google_firebaserules_ruleset.firestore.name}"


def test_every_index_of_the_repos_file_is_deployed(tf: dict[str, Any]) -> None:
    assert _module_path(tf["locals"]["indexes_file"]) == ROOT / "firestore.indexes.json"
    assert tf["locals"]["index_spec"] == "${jsondecode(file(local.indexes_file))}"
    assert "local.index_spec.indexes" in tf["locals"]["indexes"]
    index = tf["resource"]["google_firestore_index.composite"]
    assert index["for_each"] == "${local.indexes}"
    assert index["collection"] == "${each.value.collectionGroup}"
    fields = _one(index["dynamic"])["fields"]
    assert fields["for_each"] == "${each.value.fields}"
    assert "local.index_spec.fieldOverrides" in tf["locals"]["field_overrides"]
    assert (
        tf["resource"]["google_firestore_field.override"]["for_each"] == "${local.field_overrides}"
    )


def test_bucket_is_private_versioned_with_lifecycle(tf: dict[str, Any]) -> None:
    bucket = tf["resource"]["google_storage_bucket.data"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert _one(bucket["versioning"])["enabled"] is True
    assert _one(bucket["soft_delete_policy"])["retention_duration_seconds"]
    # Only scratch space expires: temporary uploads (aletheia.cloud.layout), per aletheia project.
    assert expiring_prefixes(tf, "p") == [f"p/{layout.TMP_PREFIX}/"]
    # The client's default bucket name when none is configured.
    assert tf["locals"]["bucket_name"].endswith('"${var.project_id}-aletheia"}')
    assert config.resolve({"mode": "cloud", "cloud_project": "p"}, env={}).bucket == "p-aletheia"


_PER_PROJECT = r'\$\{\[for p in var\.aletheia_projects : "\$\{p\}/([^"]*)"\]\}'


def expiring_prefixes(tf: dict[str, Any], project: str) -> list[str]:
    """Object-name prefixes the data bucket's lifecycle deletes, for aletheia project ``project``.

    ``[for p in var.aletheia_projects : "${p}/x/"]`` is evaluated for that one
    project; a Delete rule without a prefix (but an age) would cover everything.
    """
    out = []
    for rule in tf["resource"]["google_storage_bucket.data"]["lifecycle_rule"]:
        condition = _one(rule["condition"])
        if _one(rule["action"])["type"] != "Delete" or "age" not in condition:
            continue  # noncurrent versions and aborted uploads are not what documents name
        prefix = condition.get("matches_prefix")
        if prefix is None:
            out.append("")
            continue
        match = re.fullmatch(
            r'\$\{\[for p in var\.aletheia_projects : "\$\{p\}/([^"]*)"\]\}', prefix
        )
        assert match, prefix
        out.append(f"{project}/{match[1]}")
    return out


def _entry_points(kind: str = "cloud_event") -> list[str]:
    """functions/main.py's entry points of one signature (``cloud_event``, ``http``)."""
    tree = ast.parse((ROOT / "functions" / "main.py").read_text(encoding="utf-8"))
    names = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(d).endswith(f".{kind}") for d in node.decorator_list)
    ]
    assert names, f"functions/main.py declares no {kind} entry point"
    return names


def test_function_gen2_from_functions_dir_with_storage_trigger(tf: dict[str, Any]) -> None:
    fn = tf["resource"]["google_cloudfunctions2_function.on_object_finalized"]
    build = _one(fn["build_config"])
    assert (
        build["entry_point"] == "on_object_finalized" and "on_object_finalized" in _entry_points()
    )
    assert build["runtime"].startswith("python3")
    source = _one(_one(build["source"])["storage_source"])
    assert source["object"] == "${google_storage_bucket_object.function_source.name}"
    archive = tf["data"]["archive_file.function"]
    assert archive["source_dir"] == "${local.function_bundle_dir}"
    assert _module_path(tf["locals"]["function_bundle_dir"]) == (ROOT / "build" / "function")
    trigger = _one(fn["event_trigger"])
    assert trigger["event_type"] == "google.cloud.storage.object.v1.finalized"
    assert _one(trigger["event_filters"]) == {
        "attribute": "bucket",
        "value": "${google_storage_bucket.data.name}",
    }
    assert trigger["service_account_email"] == "${google_service_account.trigger.email}"
    service = _one(fn["service_config"])
    assert service["environment_variables"] == {
        "ALETHEIA_MODE": "cloud",
        "ALETHEIA_CLOUD_PROJECT": "${var.project_id}",
        "ALETHEIA_BUCKET": "${google_storage_bucket.data.name}",
        # Whose projects the function profiles besides server-created ones (function/tenancy.py).
        "ALETHEIA_OWNER": "${var.owner_uid}",
    }
    # The variables the deployed function sets are the ones aletheia.cloud.config reads.
    known = {v for names in config.ENV_VARS.values() for v in names}
    assert set(service["environment_variables"]) <= known
    assert service["service_account_email"] == "${google_service_account.function.email}"
    assert service["ingress_settings"] == "ALLOW_INTERNAL_ONLY"


def test_stale_leases_are_swept_on_a_schedule(tf: dict[str, Any]) -> None:
    job = tf["resource"]["google_cloud_scheduler_job.sweep"]
    assert _one(job["pubsub_target"])["topic_name"] == "${google_pubsub_topic.sweep.id}"
    assert job["schedule"] == "${var.sweep_schedule}"
    fn = tf["resource"]["google_cloudfunctions2_function.sweep_stale_leases"]
    assert _one(fn["build_config"])["entry_point"] in _entry_points()
    assert _one(fn["build_config"])["entry_point"] == "sweep_stale_leases"
    trigger = _one(fn["event_trigger"])
    assert trigger["event_type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert trigger["pubsub_topic"] == "${google_pubsub_topic.sweep.id}"
    assert _one(fn["service_config"])["service_account_email"] == (
        "${google_service_account.function.email}"
    )
    assert "cloudscheduler.googleapis.com" in tf["locals"]["services"]
    invoker = tf["resource"]["google_cloud_run_service_iam_member.trigger_invokes_sweep"]
    assert invoker["role"] == "roles/run.invoker"


def _roles(tf: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``{resource: (role, member)}`` of every IAM grant."""
    return {
        key: (body["role"], body["member"])
        for key, body in tf["resource"].items()
        if "_iam_" in key
    }


def test_least_privilege_service_accounts(tf: dict[str, Any]) -> None:
    roles = _roles(tf)
    for role, _ in roles.values():
        assert role not in ("roles/owner", "roles/editor", "roles/viewer"), "no basic roles"
        assert role != "roles/storage.admin"
    fn_sa = "${google_service_account.function.member}"
    assert ("roles/datastore.user", fn_sa) in roles.values()
    # Object access is granted on the data bucket only (and the Spark batch's own
    # staging bucket to the batch), never project-wide.
    staging = "${google_storage_bucket.spark_staging.name}"
    own_buckets = {"google_storage_bucket_iam_member.spark_staging": staging}
    for key, (role, _member) in roles.items():
        if role.startswith("roles/storage."):
            assert key.startswith("google_storage_bucket_iam_member."), key
            bucket = own_buckets.get(key, "${google_storage_bucket.data.name}")
            assert tf["resource"][key]["bucket"] == bucket, key
    assert ("roles/storage.objectAdmin", fn_sa) in roles.values()
    trigger_sa = "${google_service_account.trigger.member}"
    assert ("roles/eventarc.eventReceiver", trigger_sa) in roles.values()
    assert ("roles/run.invoker", trigger_sa) in roles.values()
    publisher = tf["resource"]["google_project_iam_member.gcs_agent_publishes"]
    assert publisher["role"] == "roles/pubsub.publisher"
    assert "google_storage_project_service_account.gcs_agent" in publisher["member"]
    trainers = tf["locals"]["trainers"]
    assert "google_service_account.trainer.member" in trainers and "var.team_members" in trainers
    assert tf["resource"]["google_project_iam_member.trainer_firestore"]["role"] == (
        "roles/datastore.user"
    )


def test_a_dataproc_serverless_batch_can_profile_deferred_files(tf: dict[str, Any]) -> None:
    """The Spark job (aletheia/spark/versionjob.py) runs as its own account with what it needs."""
    api = tf["resource"]["google_project_service.dataproc"]
    assert api["service"] == "dataproc.googleapis.com"
    spark = "${google_service_account.spark.member}"
    roles = _roles(tf)
    assert roles["google_project_iam_member.spark_dataproc_worker"] == (
        "roles/dataproc.worker",
        spark,
    )
    assert roles["google_project_iam_member.spark_firestore"] == ("roles/datastore.user", spark)
    objects = tf["resource"]["google_storage_bucket_iam_member.spark_objects"]
    assert objects["bucket"] == "${google_storage_bucket.data.name}"
    assert (objects["role"], objects["member"]) == ("roles/storage.objectAdmin", spark)
    staging = tf["resource"]["google_storage_bucket.spark_staging"]
    assert staging["public_access_prevention"] == "enforced"
    assert staging["uniform_bucket_level_access"] is True
    grant = tf["resource"]["google_storage_bucket_iam_member.spark_staging"]
    assert grant["bucket"] == "${google_storage_bucket.spark_staging.name}"
    assert grant["member"] == spark
    # The batch's main file is the very module the local-mode command runs.
    job = tf["resource"]["google_storage_bucket_object.spark_job"]
    assert job["source"] == "${local.spark_job_file}"
    assert _module_path(tf["locals"]["spark_job_file"]) == (
        ROOT / "aletheia" / "spark" / "versionjob.py"
    )
    source = (ROOT / "aletheia" / "spark" / "versionjob.py").read_text(encoding="utf-8")
    assert 'if __name__ == "__main__":' in source
    assert {"spark_service_account", "spark_job", "spark_staging_bucket"} <= set(tf["output"])
    # README's submit command uses these outputs and that module.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = readme[readme.index("gcloud dataproc batches submit pyspark") :][:600]
    for part in ("spark_job", "spark_service_account", "spark_staging_bucket"):
        assert part in command, part


def test_outputs_give_the_client_config(tf: dict[str, Any]) -> None:
    snippet = tf["output"]["config_toml"]["value"]
    keys = re.findall(r"^\s*(\w+)\s*=", snippet, flags=re.MULTILINE)
    assert keys == ["mode", "cloud_project", "bucket"]
    assert set(keys) <= set(config.ENV_VARS)
    assert {"cloud_project", "bucket"} <= set(tf["output"])


def test_users_can_sign_in_with_a_key_good_for_sign_in_only(tf: dict[str, Any]) -> None:
    """`aletheia auth login` needs email/password sign-in and a web API key (README)."""
    sign_in = tf["resource"]["google_identity_platform_config.auth"]["sign_in"][0]
    assert sign_in["email"][0]["enabled"] is True
    key = tf["resource"]["google_apikeys_key.client"]
    targets = {t["service"] for t in key["restrictions"][0]["api_targets"]}
    assert targets == {"identitytoolkit.googleapis.com", "securetoken.googleapis.com"}
    output = tf["output"]["firebase_api_key"]
    assert output["value"] == "${google_apikeys_key.client.key_string}"
    assert output["sensitive"] is True
    assert "firebase_api_key" in config.ENV_VARS


def test_sign_up_is_invite_only_by_default(tf: dict[str, Any]) -> None:
    """Anyone holding the public web API key could otherwise become a user and start projects."""
    client = _one(tf["resource"]["google_identity_platform_config.auth"]["client"])
    permissions = _one(client["permissions"])
    assert permissions["disabled_user_signup"] == "${!var.allow_self_signup}"
    assert tf["variable"]["allow_self_signup"]["default"] is False


def test_each_project_prefix_has_its_own_object_access(tf: dict[str, Any]) -> None:
    """Only the functions hold the whole bucket (the download function to read, for members
    it checks itself); every other object grant is conditioned on
    one aletheia project's prefix, so a member of one project cannot read another's blobs
    (or the function's row samples under ``{project}/samples/``)."""
    object_grants = {
        key: body
        for key, body in tf["resource"].items()
        if key.startswith("google_storage_bucket_iam_member.")
    }
    unconditioned = [key for key, body in object_grants.items() if "condition" not in body]
    assert sorted(unconditioned) == [
        "google_storage_bucket_iam_member.downloads_objects",
        "google_storage_bucket_iam_member.function_objects",
        # The Spark batch does the function's work on files too big for it.
        "google_storage_bucket_iam_member.spark_objects",
        "google_storage_bucket_iam_member.spark_staging",
    ]
    grant = object_grants["google_storage_bucket_iam_member.project_objects"]
    assert grant["for_each"] == "${local.project_grants}"
    expression = _one(grant["condition"])["expression"]
    prefix = (
        'resource.name.startsWith(\\"projects/_/buckets/${google_storage_bucket.data.name}'
        '/objects/${each.value.project}/\\")'
    )
    assert expression == prefix
    # The grants: the trainer on every project, other principals on the projects naming them.
    grants = tf["locals"]["project_grants"]
    assert "local.blob_projects" in grants and "var.project_members" in grants
    assert "google_service_account.trainer.member" in grants
    assert "var.team_members" not in grants
    # The prefix is the one the client writes blobs under.
    assert layout.blob_name("vision", "a" * 64).startswith("vision/")


def test_every_checkov_skip_is_justified() -> None:
    skips = [
        line.strip()
        for path in TF.glob("*.tf")
        for line in path.read_text(encoding="utf-8").splitlines()
        if "checkov:skip" in line
    ]
    assert skips, "expected the justified skips documented in storage.tf"
    for skip in skips:
        match = re.search(r"checkov:skip=(CKV\w+):(.+)", skip)
        assert match and len(match.group(2).split()) >= 5, f"justify the skip: {skip}"


# --------------------------------------------------------------------------- tools


def test_terraform_fmt_is_clean() -> None:
    assert shutil.which("terraform"), (
        "the terraform CLI is missing: install terraform >= 1.5 (README 'Requirements')"
    )
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TF)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{result.stdout}"


def test_checkov_finds_no_failed_check() -> None:
    assert CHECKOV.exists(), "checkov is missing: run `make checkov` (make test does it)"
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(TF),
            "--framework",
            "terraform",
            "--quiet",
            "--compact",
            "--skip-download",
            "--output",
            "cli",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert "Passed checks:" in result.stdout, result.stdout + result.stderr
    assert "Failed checks: 0," in result.stdout, result.stdout
    assert result.returncode == 0, result.stdout


def test_function_bundle_holds_the_function_and_the_wheel(tmp_path: Path) -> None:
    """``make function-bundle``: what terraform zips and deploys."""
    bundle = tmp_path / "bundle"
    result = subprocess.run(
        ["make", "-s", "function-bundle", f"BUNDLE_DIR={bundle}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (bundle / "main.py").read_bytes() == (ROOT / "functions" / "main.py").read_bytes()
    (wheel,) = (bundle / "wheels").glob("aletheia-*.whl")
    requirements = (bundle / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert requirements[-1] == f"./wheels/{wheel.name}"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {
        "aletheia/function/fileevents.py",
        "aletheia/cloud/layout.py",
        "aletheia/cloud/config.py",
    } <= names


def test_download_function_is_public_http_reading_as_its_own_account(tf: dict[str, Any]) -> None:
    fn = tf["resource"]["google_cloudfunctions2_function.download"]
    build = _one(fn["build_config"])
    assert build["entry_point"] == "download" and "download" in _entry_points("http")
    assert "event_trigger" not in fn  # HTTP: the dashboard calls it
    service = _one(fn["service_config"])
    assert service["service_account_email"] == "${google_service_account.downloads.email}"
    known = {v for names in config.ENV_VARS.values() for v in names} | {downloads.ORIGINS_ENV}
    assert set(service["environment_variables"]) <= known
    # Browsers hold Firebase tokens, not Google credentials: anyone may invoke, the
    # function checks who asks.
    invoker = tf["resource"]["google_cloud_run_service_iam_member.anyone_invokes_download"]
    assert (invoker["role"], invoker["member"]) == ("roles/run.invoker", "allUsers")
    roles = {(role, member) for role, member in _roles(tf).values()}
    sa = "${google_service_account.downloads.member}"
    # It reads: no write role anywhere, and it signs only as itself.
    assert {r for r, m in roles if m == sa} == {
        "roles/datastore.viewer",
        "roles/storage.objectViewer",
        "roles/iam.serviceAccountTokenCreator",
    }
    signer = tf["resource"]["google_service_account_iam_member.downloads_signs_as_itself"]
    assert signer["service_account_id"] == "${google_service_account.downloads.name}"
    assert "downloads_url" in tf["output"]
