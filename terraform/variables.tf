variable "project_id" {
  description = "Google Cloud project to deploy aletheia into."
  type        = string
}

variable "region" {
  description = "Region of the bucket, the function and its trigger."
  type        = string
  default     = "europe-west1"
}

variable "firestore_location" {
  description = "Firestore location (a region, or a multi-region such as eur3 or nam5)."
  type        = string
  default     = "eur3"
}

variable "bucket_name" {
  description = "Bucket for content-addressed blobs; empty means \"<project_id>-aletheia\" (the client's default)."
  type        = string
  default     = ""
}

variable "function_name" {
  description = "Name of the storage function (schema and statistics of uploaded data)."
  type        = string
  default     = "aletheia-on-object-finalized"
}

variable "owner_uid" {
  description = "Firebase uid the storage function writes for (ALETHEIA_OWNER): it profiles data of server-created projects and of projects naming this uid as writer or owner; empty: server-created ones only."
  type        = string
  default     = ""
}

variable "aletheia_projects" {
  description = "aletheia projects (Projects/{p}) whose tmp/ prefix gets a lifecycle rule."
  type        = list(string)
  default     = ["default"]
}

variable "tmp_retention_days" {
  description = "Days before leftovers of interrupted uploads under tmp/ are deleted."
  type        = number
  default     = 2
}

variable "noncurrent_retention_days" {
  description = "Days a replaced or deleted object version is kept (undo window)."
  type        = number
  default     = 30
}

variable "team_members" {
  description = "Principals (user:a@b.c, group:team@b.c) allowed to run training with their own credentials (Firestore access; blobs per project_members)."
  type        = list(string)
  default     = []
}

variable "project_members" {
  description = "Per aletheia project, the principals whose credentials read and write its blobs (objects under {project}/ only)."
  type        = map(list(string))
  default     = {}
}

variable "allow_self_signup" {
  description = "Let anyone sign up as a Firebase user from a client (default: invite-only, an administrator creates accounts)."
  type        = bool
  default     = false
}

variable "function_max_instances" {
  description = "Upper bound on concurrent function instances (caps cost under a burst of uploads)."
  type        = number
  default     = 10
}

variable "function_memory" {
  description = "Memory of one function instance; statistics stream in bounded memory."
  type        = string
  default     = "1Gi"
}

variable "function_bundle_dir" {
  description = "Directory built by `make function-bundle`: functions/ plus the aletheia wheel."
  type        = string
  default     = ""
}

variable "sweep_schedule" {
  description = "How often (cron, UTC) stale profiling leases are swept and re-driven."
  type        = string
  default     = "*/10 * * * *"
}

variable "google_oauth_client_id" {
  description = "OAuth 2.0 web client id for \"Sign in with Google\" on the dashboard; empty: email/password only."
  type        = string
  default     = ""
}

variable "google_oauth_client_secret" {
  description = "The secret of google_oauth_client_id."
  type        = string
  default     = ""
  sensitive   = true
}

variable "hosting_site_id" {
  description = "Firebase Hosting site of the dashboard (<id>.web.app); empty means \"<project_id>-aletheia\"."
  type        = string
  default     = ""
}
