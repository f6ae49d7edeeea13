# Firebase users (`aletheia auth login`): email/password sign-in through
# Identity Platform, and the web API key the client sends with it. Users who
# sign in are judged by firestore.rules; server credentials bypass the rules.
resource "google_identity_platform_config" "auth" {
  project = var.project_id

  sign_in {
    allow_duplicate_emails = false
    email {
      enabled           = true
      password_required = true
    }
  }

  depends_on = [google_project_service.apis]
}

# A Firebase web API key identifies the project; it grants nothing by itself.
# It is restricted to the two sign-in APIs so it cannot be spent on others.
resource "google_apikeys_key" "client" {
  project      = var.project_id
  name         = "aletheia-client"
  display_name = "aletheia client sign-in"

  restrictions {
    api_targets {
      service = "identitytoolkit.googleapis.com"
    }
    api_targets {
      service = "securetoken.googleapis.com"
    }
  }

  depends_on = [google_project_service.apis]
}
