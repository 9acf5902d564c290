# Who may call the functions (roles/run.invoker on each function's Cloud Run service).
# The functions that schedules.json targets (ingest, train, predict): only the scheduler's
# account. The api: nobody but var.api_invokers, unless var.api_public opens it to everyone
# read-only (main.tf's local.api_environment). Why not IAP: docs/deploy.md, "Open the dashboard".

resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes" {
  for_each = toset([for s in values(local.schedules) : s.function])
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_run_v2_service_iam_member" "api_invokers" {
  for_each = toset(var.api_invokers)
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["api"].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.key
}

resource "google_cloud_run_v2_service_iam_member" "api_public" {
  #checkov:skip=CKV_GCP_102:Opt-in (api_public = true, default false) for the dashboard and read routes of public air-quality forecasts; the api is then read-only (AIRCAST_API_READ_ONLY) and the other functions never get this binding.
  count    = var.api_public ? 1 : 0
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["api"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}
