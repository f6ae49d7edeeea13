# The dashboard on Firebase Hosting: a static site (web/, built by `make web`),
# uploaded by `aletheia ui deploy`. Firebase resources exist only in the
# google-beta provider. The site serves files only; the app signs users in
# with Firebase Auth and reads Firestore under firestore.rules.
locals {
  # Site ids are 6-30 characters: lowercase letters, digits and hyphens.
  hosting_site_id = var.hosting_site_id != "" ? var.hosting_site_id : "${var.project_id}-aletheia"
}

# Firebase on the Google Cloud project (Hosting, and Auth's web sign-in handler).
resource "google_firebase_project" "default" {
  provider = google-beta
  project  = var.project_id

  depends_on = [google_project_service.apis]
}

resource "google_firebase_hosting_site" "dashboard" {
  provider = google-beta
  project  = var.project_id
  site_id  = local.hosting_site_id

  depends_on = [google_firebase_project.default]
}
