output "function_urls" {
  description = "HTTPS URL of each function (call with an identity token unless public)."
  value       = { for name, f in google_cloudfunctions2_function.function : name => f.service_config[0].uri }
}

output "dataset" {
  description = "BigQuery dataset, as project.dataset."
  value       = "${var.project_id}.${google_bigquery_dataset.aircast.dataset_id}"
}

output "artifact_bucket" {
  description = "Bucket holding models/ and serving/latest.json (AIRCAST_BUCKET)."
  value       = google_storage_bucket.artifacts.name
}

output "source_bucket" {
  description = "Bucket holding the functions' source zips."
  value       = google_storage_bucket.sources.name
}

output "scheduler_jobs" {
  description = "Cloud Scheduler job names (gcloud scheduler jobs run NAME --location REGION)."
  value       = [for name, j in google_cloud_scheduler_job.job : j.name]
}

output "service_accounts" {
  description = "Service account email of each function, and of the scheduler."
  value       = merge({ for name, sa in google_service_account.function : name => sa.email }, { scheduler = google_service_account.scheduler.email })
}

output "openaq_secret" {
  description = "Secret Manager secret for the OpenAQ API key (add a version, then set openaq_api_key_set = true)."
  value       = google_secret_manager_secret.openaq_api_key.id
}

output "aqicn_secret" {
  description = "Secret Manager secret for the AQICN token (add a version, then set aqicn_token_set = true)."
  value       = google_secret_manager_secret.aqicn_token.id
}

output "dashboard" {
  description = "How a person opens the dashboard: its URL when api_public, else the `gcloud run services proxy` command that serves it on http://localhost:8080 with your identity (you need run.invoker: api_invokers, or Owner/Editor)."
  value       = var.api_public ? "${google_cloudfunctions2_function.function["api"].service_config[0].uri}/" : "gcloud run services proxy ${google_cloudfunctions2_function.function["api"].name} --project ${var.project_id} --region ${var.region} --port 8080   # then open http://localhost:8080/"
}
