output "cloud_project" {
  description = "ALETHEIA_CLOUD_PROJECT for clients."
  value       = var.project_id
}

output "bucket" {
  description = "ALETHEIA_BUCKET for clients."
  value       = google_storage_bucket.data.name
}

output "function" {
  description = "The storage function."
  value       = google_cloudfunctions2_function.on_object_finalized.name
}

output "trainer_service_account" {
  description = "Service account for training jobs (attach it to VMs / jobs, or impersonate it)."
  value       = google_service_account.trainer.email
}

output "firebase_api_key" {
  description = "ALETHEIA_FIREBASE_API_KEY: lets `aletheia auth login` sign teammates in as Firebase users."
  value       = google_apikeys_key.client.key_string
  sensitive   = true
}

output "config_toml" {
  description = "Paste into ~/.config/aletheia/config.toml."
  value       = <<-EOT
    [aletheia]
    mode = "cloud"
    cloud_project = "${var.project_id}"
    bucket = "${google_storage_bucket.data.name}"
  EOT
}

output "hosting_site" {
  description = "ALETHEIA_HOSTING_SITE: the Firebase Hosting site `aletheia ui deploy` uploads the dashboard to."
  value       = google_firebase_hosting_site.dashboard.site_id
}

output "dashboard_url" {
  description = "Where the deployed dashboard is served."
  value       = google_firebase_hosting_site.dashboard.default_url
}

output "downloads_url" {
  description = "ALETHEIA_DOWNLOADS_URL: the download function the dashboard fetches run diffs and artifacts through."
  value       = google_cloudfunctions2_function.download.url
}
