# The scheduled sweep: files whose profiling worker died (killed, out of
# memory, timed out) stay `processing` with an expired lease, and their event
# may be lost with the worker. Every few minutes Cloud Scheduler publishes to
# a topic; the same function bundle's `sweep_stale_leases` entry point then
# re-drives a bounded number of them (aletheia/function/leases.py). The storage
# function also sweeps one after a data-file event, at most once a minute per
# instance (ALETHEIA_SWEEP_EVERY_S).

resource "google_pubsub_topic" "sweep" {
  #checkov:skip=CKV_GCP_83:The messages carry no data (an empty tick); Google-managed encryption is enough.
  name                       = "${var.function_name}-sweep"
  project                    = var.project_id
  message_retention_duration = "600s"

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "sweep" {
  name        = "${var.function_name}-sweep"
  project     = var.project_id
  region      = var.region
  description = "Re-drive data files whose profiling never finished."
  schedule    = var.sweep_schedule
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.sweep.id
    data       = base64encode("sweep")
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloudfunctions2_function" "sweep_stale_leases" {
  name     = "${var.function_name}-sweep"
  project  = var.project_id
  location = var.region

  build_config {
    runtime     = "python311"
    entry_point = "sweep_stale_leases"
    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    # One sweeper at a time: two would only contend for the same leases.
    max_instance_count               = 1
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
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.sweep.id
    retry_policy          = "RETRY_POLICY_DO_NOT_RETRY" # the next tick is the retry
    service_account_email = google_service_account.trigger.email
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.trigger_receives_events,
  ]
}

resource "google_cloud_run_service_iam_member" "trigger_invokes_sweep" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.sweep_stale_leases.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.trigger.member
}
