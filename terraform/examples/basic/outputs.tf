output "function_urls" {
  description = "HTTPS URL of each function (call with an identity token unless public)."
  value       = module.aircast.function_urls
}

output "dataset" {
  description = "BigQuery dataset, as project.dataset."
  value       = module.aircast.dataset
}

output "artifact_bucket" {
  description = "Bucket holding models/ and serving/latest.json (AIRCAST_BUCKET)."
  value       = module.aircast.artifact_bucket
}

output "source_bucket" {
  description = "Bucket holding the functions' source zips."
  value       = module.aircast.source_bucket
}

output "scheduler_jobs" {
  description = "Cloud Scheduler job names (gcloud scheduler jobs run NAME --location REGION)."
  value       = module.aircast.scheduler_jobs
}

output "service_accounts" {
  description = "Service account email of each function, and of the scheduler."
  value       = module.aircast.service_accounts
}

output "openaq_secret" {
  description = "Secret Manager secret for the OpenAQ API key (add a version, then set openaq_api_key_set = true)."
  value       = module.aircast.openaq_secret
}

output "aqicn_secret" {
  description = "Secret Manager secret for the AQICN token (add a version, then set aqicn_token_set = true)."
  value       = module.aircast.aqicn_secret
}

output "dashboard" {
  description = "How a person opens the dashboard: its URL when api_public, else the `gcloud run services proxy` command that serves it on http://localhost:8080 with your identity."
  value       = module.aircast.dashboard
}
