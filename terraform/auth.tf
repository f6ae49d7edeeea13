# Firebase users (`aletheia auth login`): email/password sign-in through
# Identity Platform, and the web API key the client sends with it. Users who
# sign in are judged by firestore.rules; server credentials bypass the rules.
# Accounts are created by an administrator unless allow_self_signup is set.
resource "google_identity_platform_config" "auth" {
  project = var.project_id

  # Where the dashboard may sign users in from: `aletheia ui` on localhost and
  # the Firebase Hosting site (terraform/hosting.tf).
  authorized_domains = [
    "localhost",
    "${var.project_id}.firebaseapp.com",
    "${local.hosting_site_id}.web.app",
    "${local.hosting_site_id}.firebaseapp.com",
  ]

  sign_in {
    allow_duplicate_emails = false
    email {
      enabled           = true
      password_required = true
    }
  }

  # Invite-only by default: nobody signs up from a client (which would let
  # anyone with the public web API key become a user and start projects);
  # an administrator creates the accounts (Firebase console, Admin SDK or
  # `firebase auth:import`). Set allow_self_signup = true to reopen it.
  client {
    permissions {
      disabled_user_signup   = !var.allow_self_signup
      disabled_user_deletion = true
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

# "Sign in with Google" on the dashboard: Google as an identity provider, once an
# OAuth client exists (Google Cloud console > APIs & Services > Credentials, a
# "Web application" client whose redirect URI is
# https://<hosting site>.firebaseapp.com/__/auth/handler). Without one, the
# dashboard offers email/password only.
resource "google_identity_platform_default_supported_idp_config" "google" {
  count         = var.google_oauth_client_id == "" ? 0 : 1
  project       = var.project_id
  idp_id        = "google.com"
  client_id     = var.google_oauth_client_id
  client_secret = var.google_oauth_client_secret
  enabled       = true

  depends_on = [google_identity_platform_config.auth]
}
