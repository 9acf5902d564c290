# One Cloud Scheduler job per entry of schedules.json, which `make generate` writes from
# common/schedules.py: the same definition the local scheduler and `aircast replay` use.
resource "google_cloud_scheduler_job" "job" {
  for_each         = local.schedules
  project          = var.project_id
  name             = each.key
  description      = each.value.description
  region           = var.region
  schedule         = each.value.cron
  time_zone        = each.value.time_zone
  # The function's timeout (a var.functions override included), at most Cloud Scheduler's
  # 30 min: a shorter deadline would retry a run that is still running.
  attempt_deadline = "${min(1800, max(each.value.attempt_deadline_s, local.functions[each.value.function].timeout_seconds))}s"

  retry_config {
    retry_count = each.value.retry_count
  }

  http_target {
    uri         = google_cloudfunctions2_function.function[each.value.function].service_config[0].uri
    http_method = "POST"
    body        = base64encode(jsonencode(each.value.body))
    headers     = { "Content-Type" = "application/json" }

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.function[each.value.function].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invokes]
}
