# The AQICN token. Terraform creates the secret but never its value (which would land in
# the state): add it with `gcloud secrets versions add aqicn-token --data-file=-`, then
# apply with aqicn_token_set = true.
resource "google_secret_manager_secret" "aqicn_token" {
  project   = var.project_id
  secret_id = "aqicn-token"

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "reads_aqicn_token" {
  for_each  = { for name, f in local.functions : name => f if f.reads_aqicn_token }
  project   = var.project_id
  secret_id = google_secret_manager_secret.aqicn_token.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.key].member
}

# The OpenAQ API key, like the AQICN token: the secret here, its value added by hand
# (`gcloud secrets versions add openaq-api-key --data-file=-`), then apply with
# openaq_api_key_set = true. Ingest sends it as X-API-Key and never logs or stores it.
resource "google_secret_manager_secret" "openaq_api_key" {
  project   = var.project_id
  secret_id = "openaq-api-key"

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "reads_openaq_api_key" {
  for_each  = { for name, f in local.functions : name => f if f.reads_openaq_api_key }
  project   = var.project_id
  secret_id = google_secret_manager_secret.openaq_api_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.key].member
}
