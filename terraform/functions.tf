# The 2nd-gen functions of local.functions, each from its zip (make package). All are HTTP
# functions on Cloud Run; who may call them is set in invokers.tf.
resource "google_cloudfunctions2_function" "function" {
  #checkov:skip=CKV_GCP_124:Cloud Scheduler calls from outside the VPC, so internal-only ingress would block it; every call needs an OIDC token of a member with run.invoker (invokers.tf), and only the api can be made public.
  for_each    = local.functions
  project     = var.project_id
  name        = "aircast-${each.key}"
  location    = var.region
  description = "aircast ${each.key} (functions/${each.key}/main.py)"

  build_config {
    runtime         = "python312"
    entry_point     = each.value.entry_point
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    available_memory   = each.value.memory
    available_cpu      = each.value.cpu
    timeout_seconds    = each.value.timeout_seconds
    max_instance_count = each.value.max_instances
    min_instance_count = each.value.min_instances
    # Jobs take one run per instance (CPU-bound, long); the api serves many lookups at once,
    # each a dictionary access, with as many gunicorn threads as requests it may receive.
    max_instance_request_concurrency = each.value.concurrency
    service_account_email            = google_service_account.function[each.key].email
    # Cloud Scheduler calls from outside the VPC; access is controlled by IAM (invokers.tf).
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    environment_variables          = merge(local.environment, each.value.environment, { THREADS = tostring(each.value.concurrency) })

    dynamic "secret_environment_variables" {
      for_each = each.value.reads_aqicn_token && var.aqicn_token_set ? [google_secret_manager_secret.aqicn_token.secret_id] : []
      content {
        key        = "AIRCAST_AQICN_TOKEN"
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }

    dynamic "secret_environment_variables" {
      for_each = each.value.reads_openaq_api_key && var.openaq_api_key_set ? [google_secret_manager_secret.openaq_api_key.secret_id] : []
      content {
        key        = "AIRCAST_OPENAQ_API_KEY"
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length(setsubtract(keys(var.functions), keys(local.functions))) == 0
      error_message = "var.functions may only name functions this module deploys (the keys of local.function_defaults in main.tf)."
    }
  }

  depends_on = [
    google_project_iam_member.build,
    google_secret_manager_secret_iam_member.reads_aqicn_token,
    google_secret_manager_secret_iam_member.reads_openaq_api_key,
  ]
}
