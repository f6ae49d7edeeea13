# The storage function (2nd gen): schema and statistics of every uploaded data
# file, written to Projects/{p}/Files/{sha256}. Its archive is functions/ plus
# the aletheia wheel, assembled by `make function-bundle` before `terraform apply`.

locals {
  function_bundle_dir = var.function_bundle_dir != "" ? var.function_bundle_dir : "${path.module}/../build/function"
}

data "archive_file" "function" {
  type        = "zip"
  source_dir  = local.function_bundle_dir
  output_path = "${path.module}/.terraform/function-source.zip"
  excludes    = ["__pycache__", ".venv"]
}

resource "google_storage_bucket_object" "function_source" {
  # Named by content: a changed bundle makes a new object and redeploys.
  name   = "function-source-${data.archive_file.function.output_md5}.zip"
  bucket = google_storage_bucket.function_source.name
  source = data.archive_file.function.output_path
}

resource "google_cloudfunctions2_function" "on_object_finalized" {
  name     = var.function_name
  project  = var.project_id
  location = var.region

  build_config {
    runtime     = "python311"
    entry_point = "on_object_finalized"
    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    max_instance_count               = var.function_max_instances
    available_memory                 = var.function_memory
    timeout_seconds                  = 540
    max_instance_request_concurrency = 1
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function.email
    environment_variables = {
      ALETHEIA_MODE          = "cloud"
      ALETHEIA_CLOUD_PROJECT = var.project_id
      ALETHEIA_BUCKET        = google_storage_bucket.data.name
      ALETHEIA_OWNER         = var.owner_uid
    }
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.storage.object.v1.finalized"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email
    event_filters {
      attribute = "bucket"
      value     = google_storage_bucket.data.name
    }
  }

  lifecycle {
    precondition {
      condition     = fileexists("${local.function_bundle_dir}/main.py") && length(fileset(local.function_bundle_dir, "wheels/aletheia-*.whl")) > 0
      error_message = "The function bundle is missing: run `make function-bundle` before `terraform apply`."
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.gcs_agent_publishes,
    google_project_iam_member.trigger_receives_events,
  ]
}
