# Least privilege: each identity gets what it uses, on the narrowest resource.

data "google_project" "this" {
  project_id = var.project_id
}

data "google_storage_project_service_account" "gcs_agent" {
  project = var.project_id
}

# --- the function: reads the uploaded object, writes samples and Files/{sha256}

resource "google_service_account" "function" {
  project      = var.project_id
  account_id   = "aletheia-function"
  display_name = "aletheia storage function"
}

resource "google_project_iam_member" "function_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.function.member
}

resource "google_storage_bucket_iam_member" "function_objects" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.function.member
}

# --- the Eventarc trigger: receives the events and invokes the function

resource "google_service_account" "trigger" {
  project      = var.project_id
  account_id   = "aletheia-trigger"
  display_name = "aletheia Eventarc trigger"
}

resource "google_project_iam_member" "trigger_receives_events" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.trigger.member
}

resource "google_cloud_run_service_iam_member" "trigger_invokes_function" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.on_object_finalized.service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.trigger.member
}

# Cloud Storage publishes object events through Pub/Sub on Eventarc's behalf.
resource "google_project_iam_member" "gcs_agent_publishes" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs_agent.email_address}"
}

# --- trainers: the Python client, from CI, notebooks or training machines

resource "google_service_account" "trainer" {
  project      = var.project_id
  account_id   = "aletheia-trainer"
  display_name = "aletheia training jobs"
}

locals {
  # The trainer service account and every team member get the same access.
  trainers = toset(concat([google_service_account.trainer.member], var.team_members))
}

resource "google_project_iam_member" "trainer_firestore" {
  for_each = local.trainers
  project  = var.project_id
  role     = "roles/datastore.user"
  member   = each.value
}

resource "google_storage_bucket_iam_member" "trainer_objects" {
  for_each = local.trainers
  bucket   = google_storage_bucket.data.name
  role     = "roles/storage.objectAdmin"
  member   = each.value
}
