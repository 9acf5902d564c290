# An optional monthly budget on this project's spend (off unless both billing_account and
# budget_amount_usd are set): Cloud Billing emails the billing account's admins, and the
# notification_channels if any, when actual spend crosses each of budget_thresholds.
# docs/deploy.md's cost section says what the default schedule is expected to cost.
resource "google_billing_budget" "aircast" {
  count           = var.billing_account != null && var.budget_amount_usd != null ? 1 : 0
  billing_account = var.billing_account
  display_name    = "aircast ${var.project_id}"

  budget_filter {
    projects        = ["projects/${data.google_project.this.number}"]
    calendar_period = "MONTH"
  }

  amount {
    specified_amount {
      currency_code = "USD"
      units         = tostring(floor(var.budget_amount_usd))
      nanos         = floor((var.budget_amount_usd - floor(var.budget_amount_usd)) * 1000000000)
    }
  }

  dynamic "threshold_rules" {
    for_each = var.budget_thresholds
    content {
      threshold_percent = threshold_rules.value
      spend_basis       = "CURRENT_SPEND"
    }
  }

  all_updates_rule {
    monitoring_notification_channels = var.notification_channels
    disable_default_iam_recipients   = false
  }

  depends_on = [google_project_service.api]
}
