# Alerts. The monitor function evaluates the pipeline's health (common/monitoring) every
# hour, after predict, and logs one line per condition ({"message": "health condition", "condition", "state",
# "value", ...}); the run audit logs "run finished" / "run failed" with run_id and
# function. Log-based metrics count those lines; the alert policies below fire on them.
# Levels and windows come from thresholds.json, generated from
# common/monitoring/thresholds.py (the numbers `aircast status` uses).

locals {
  thresholds = jsondecode(file("${path.module}/thresholds.json"))
  # Conditions whose `alert` state pages: the status evaluation already compared the value
  # with the shared level, so a policy only counts alert lines.
  health_alerts = {
    freshness      = "A location has sent no observation for more than ${local.thresholds.levels.freshness.alert} hours"
    snapshot       = "The serving snapshot is more than ${local.thresholds.levels.snapshot.alert} hours old"
    model_age      = "No model promoted for more than ${local.thresholds.levels.model_age.alert} days"
    accuracy       = "Model MAE above ${local.thresholds.levels.accuracy.alert} x persistence over ${local.thresholds.windows.accuracy_window_hours} hours"
    rejected_share = "A source's rejected share above ${local.thresholds.levels.rejected_share.alert} over ${local.thresholds.windows.rejected_window_hours} hours"
    drift          = "An input's PSI against its month of the training data above ${local.thresholds.levels.drift.alert} and above its training weeks' own"
    runs           = "No completed ingest or predict run for more than ${local.thresholds.levels.runs.alert} hours"
  }
  no_success_hours = ceil(local.thresholds.levels.runs.alert)
  api_host         = trimprefix(google_cloudfunctions2_function.function["api"].service_config[0].uri, "https://")
}

resource "google_logging_metric" "run_failed" {
  project     = var.project_id
  name        = "aircast/run_failed"
  description = "Runs that failed (each attempt, retries included), by function."
  filter      = "jsonPayload.message=\"run failed\" AND jsonPayload.function:*"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "function"
      value_type = "STRING"
    }
  }
  label_extractors = { function = "EXTRACT(jsonPayload.function)" }
}

resource "google_logging_metric" "run_succeeded" {
  project     = var.project_id
  name        = "aircast/run_succeeded"
  description = "Runs that finished with status success or partial, by function."
  filter      = "jsonPayload.message=\"run finished\" AND (jsonPayload.status=\"success\" OR jsonPayload.status=\"partial\")"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "function"
      value_type = "STRING"
    }
  }
  label_extractors = { function = "EXTRACT(jsonPayload.function)" }
}

resource "google_logging_metric" "health_alert" {
  project     = var.project_id
  name        = "aircast/health_alert"
  description = "Health conditions evaluated as alert, by condition."
  filter      = "jsonPayload.message=\"health condition\" AND jsonPayload.state=\"alert\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "condition"
      value_type = "STRING"
    }
  }
  label_extractors = { condition = "EXTRACT(jsonPayload.condition)" }
}

# A run failed more often in an hour than the scheduler retries it: it stayed failed.
resource "google_monitoring_alert_policy" "run_failed" {
  project               = var.project_id
  display_name          = "aircast: a run failed after the scheduler's retries"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "failed runs per function per hour"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.run_failed.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.thresholds.failed_runs_alert
      duration        = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }
    }
  }
}

# No completed ingest, predict or monitor run for N hours: also catches a pipeline that
# stopped running altogether, or a monitor that stopped (then no health line is logged).
resource "google_monitoring_alert_policy" "no_success" {
  for_each              = toset(["ingest", "predict", "monitor"])
  project               = var.project_id
  display_name          = "aircast: no successful ${each.key} for ${local.no_success_hours} hours"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "no successful ${each.key} run"
    condition_absent {
      filter   = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.run_succeeded.name}\" AND resource.type=\"cloud_run_revision\" AND metric.label.function=\"${each.key}\""
      duration = "${local.no_success_hours * 3600}s"
      aggregations {
        alignment_period   = "3600s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "health" {
  for_each              = local.health_alerts
  project               = var.project_id
  display_name          = "aircast: ${each.key} alert"
  combiner              = "OR"
  notification_channels = var.notification_channels
  documentation {
    content   = "${each.value}. Run `aircast status` (docs/operations.md) for the details."
    mime_type = "text/markdown"
  }
  conditions {
    display_name = each.value
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.health_alert.name}\" AND resource.type=\"cloud_run_revision\" AND metric.label.condition=\"${each.key}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "3600s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }
}

# The api's /health every five minutes. A private api (the default) is called with an
# OIDC token of the project's Monitoring service agent, which gets run.invoker on the api
# alone; a public (read-only) api is called like any browser would, without one.
data "google_project" "this" {
  project_id = var.project_id
}

locals {
  monitoring_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
}

resource "google_cloud_run_v2_service_iam_member" "api_uptime_check" {
  count    = var.api_public ? 0 : 1
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["api"].service_config[0].service
  role     = "roles/run.invoker"
  member   = local.monitoring_agent
}

resource "google_monitoring_uptime_check_config" "api_health" {
  project      = var.project_id
  display_name = "aircast api /health"
  timeout      = "10s"
  period       = "300s"
  http_check {
    path         = "/health"
    port         = 443
    use_ssl      = true
    validate_ssl = true
    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
    dynamic "service_agent_authentication" {
      for_each = var.api_public ? [] : ["OIDC_TOKEN"]
      content {
        type = service_agent_authentication.value
      }
    }
  }
  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = local.api_host
    }
  }
  depends_on = [google_cloud_run_v2_service_iam_member.api_uptime_check]
}
