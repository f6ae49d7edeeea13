# The download function (2nd gen, HTTP): the dashboard's signed-in members fetch a
# run's dirty diff, package list and artifact files, which Firebase ID tokens cannot
# read from the bucket. It verifies the caller's Firebase ID token and project
# membership itself, finds the object from the run's Firestore records, and answers
# with a V4 URL it signs as its own service account (IAM signBlob). Same archive as
# the storage function (functions/main.py, entry point `download`).

locals {
  dashboard_origins = "https://${local.hosting_site_id}.web.app,https://${local.hosting_site_id}.firebaseapp.com"
}

resource "google_service_account" "downloads" {
  project      = var.project_id
  account_id   = "aletheia-downloads"
  display_name = "aletheia download function"
}

# Reads memberships, runs and artifact versions; writes nothing.
resource "google_project_iam_member" "downloads_firestore" {
  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = google_service_account.downloads.member
}

resource "google_storage_bucket_iam_member" "downloads_objects" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.downloads.member
}

# Signing a URL without a key file: the account calls signBlob on itself only.
resource "google_service_account_iam_member" "downloads_signs_as_itself" {
  service_account_id = google_service_account.downloads.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.downloads.member
}

resource "google_cloudfunctions2_function" "download" {
  #checkov:skip=CKV_GCP_124:browsers on the internet call it directly; each request must carry a verified Firebase ID token of a project member
  name     = "${var.function_name}-download"
  project  = var.project_id
  location = var.region

  build_config {
    runtime     = "python311"
    entry_point = "download"
    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    max_instance_count             = var.function_max_instances
    available_memory               = "512M"
    timeout_seconds                = 300
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.downloads.email
    environment_variables = {
      ALETHEIA_MODE              = "cloud"
      ALETHEIA_CLOUD_PROJECT     = var.project_id
      ALETHEIA_BUCKET            = google_storage_bucket.data.name
      ALETHEIA_DASHBOARD_ORIGINS = local.dashboard_origins
    }
  }

  depends_on = [google_project_service.apis]
}

# Browsers call it without Google credentials: the function authenticates each
# request itself (Firebase ID token, then project membership).
resource "google_cloud_run_service_iam_member" "anyone_invokes_download" {
  #checkov:skip=CKV_GCP_102:browsers hold Firebase tokens, not Google credentials; the function checks the token and project membership itself
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.download.service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}
