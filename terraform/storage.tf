# The bucket of content-addressed blobs ({p}/sha256/ab/cdef...), row samples
# and full profiles the function derives ({p}/samples/...) and temporary
# uploads ({p}/tmp/...). Only tmp/ expires: Files documents link to the
# samples and profiles, so they live as long as the data they describe.

locals {
  bucket_name = var.bucket_name != "" ? var.bucket_name : "${var.project_id}-aletheia"
}

resource "google_storage_bucket" "data" {
  #checkov:skip=CKV_GCP_62:Access logs would double every object write; Data Access audit logs cover reads where a team needs them.
  name                        = local.bucket_name
  project                     = var.project_id
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Versioning plus soft delete: an overwritten or deleted blob can be restored.
  versioning {
    enabled = true
  }
  soft_delete_policy {
    retention_duration_seconds = 7 * 24 * 3600
  }

  lifecycle_rule {
    condition {
      matches_prefix = [for p in var.aletheia_projects : "${p}/tmp/"]
      age            = var.tmp_retention_days
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_project_service.apis]
}

# The function's source archive lives apart from the data, so uploading it
# never fires the function and trainers cannot replace it.
resource "google_storage_bucket" "function_source" {
  #checkov:skip=CKV_GCP_62:Only deployments write here; Cloud Audit Logs record them.
  name                        = "${local.bucket_name}-fn-source"
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
