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
  # The trainer service account and every team member reach Firestore (IAM
  # cannot split it per aletheia project: the clients' project checks and
  # firestore.rules do, see README "Two kinds of access").
  trainers = toset(concat([google_service_account.trainer.member], var.team_members))

  # Blobs are split per aletheia project: one grant per (project, principal),
  # conditioned on the object-name prefix {project}/. The trainer service
  # account gets every project; other principals only those listing them.
  blob_projects = toset(concat(var.aletheia_projects, keys(var.project_members)))
  project_grants = merge(
    { for p in local.blob_projects : "${p} trainer" => {
      project = p
      member  = google_service_account.trainer.member
    } },
    merge([for p, principals in var.project_members : {
      for m in principals : "${p} ${m}" => { project = p, member = m }
    }]...),
  )
}

resource "google_project_iam_member" "trainer_firestore" {
  for_each = local.trainers
  project  = var.project_id
  role     = "roles/datastore.user"
  member   = each.value
}

resource "google_storage_bucket_iam_member" "project_objects" {
  for_each = local.project_grants
  bucket   = google_storage_bucket.data.name
  role     = "roles/storage.objectAdmin"
  member   = each.value.member

  condition {
    title       = "aletheia project ${each.value.project}"
    description = "Objects of aletheia project ${each.value.project} only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.data.name}/objects/${each.value.project}/\")"
  }
}
