# Dataproc Serverless: the Spark batch that profiles the data files too big
# for the storage function. The function records such a file `deferred`
# (over ALETHEIA_FUNCTION_MAX_BYTES); `aletheia.spark.versionjob`, the same
# module `aletheia datasets stats NAME --engine spark` runs in local mode,
# profiles it and writes its Files document and profile blobs as the function
# would. The batch runs as its own service account with what that job
# touches: Firestore (the Files registry), the data bucket (reads blobs,
# writes profiles and samples), its staging bucket, and Dataproc's worker role.
# README ("Profiling files too big for the function") has the submit command.

resource "google_project_service" "dataproc" {
  project            = var.project_id
  service            = "dataproc.googleapis.com"
  disable_on_destroy = false
}

resource "google_service_account" "spark" {
  project      = var.project_id
  account_id   = "aletheia-spark"
  display_name = "aletheia Spark profiling batches (Dataproc Serverless)"
}

# A Serverless batch's service account must hold the Dataproc worker role.
resource "google_project_iam_member" "spark_dataproc_worker" {
  project = var.project_id
  role    = "roles/dataproc.worker"
  member  = google_service_account.spark.member
}

# Files/{sha256} documents and the version's validation, as the function writes them.
resource "google_project_iam_member" "spark_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.spark.member
}

# Every project's blobs are read and their profile and sample blobs written,
# like the storage function (whose grant this mirrors).
resource "google_storage_bucket_iam_member" "spark_objects" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.spark.member
}

# The batch's main file and Dataproc's own staging: apart
# from the data, so nothing here fires the function.
resource "google_storage_bucket" "spark_staging" {
  #checkov:skip=CKV_GCP_62:Only deployments and the batches write here; Cloud Audit Logs record them.
  name                        = "${local.bucket_name}-spark"
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      num_newer_versions = 5
    }
    action {
      type = "Delete"
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "spark_staging" {
  bucket = google_storage_bucket.spark_staging.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.spark.member
}

# The job's code is the module local mode runs: uploaded as the batch's main file.
resource "google_storage_bucket_object" "spark_job" {
  name   = "versionjob-${filemd5(local.spark_job_file)}.py"
  bucket = google_storage_bucket.spark_staging.name
  source = local.spark_job_file
}

locals {
  spark_job_file = "${path.module}/../aletheia/spark/versionjob.py"
}

output "spark_service_account" {
  description = "Service account of the Spark profiling batch (gcloud dataproc batches submit --service-account)."
  value       = google_service_account.spark.email
}

output "spark_job" {
  description = "The Spark profiling batch's main file (aletheia/spark/versionjob.py)."
  value       = "gs://${google_storage_bucket.spark_staging.name}/${google_storage_bucket_object.spark_job.name}"
}

output "spark_staging_bucket" {
  description = "Dataproc's staging bucket for the Spark batch (--deps-bucket)."
  value       = google_storage_bucket.spark_staging.name
}
