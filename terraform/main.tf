# The one list of functions, and the inputs generated from `common` (make generate):
# schedules.json from common/scheduling/schedules.py, tables.json and schemas/ from
# common/core/schema.py, functions.json (timeouts) from common/core/deploy.py.

locals {
  # Every per-function resource (service account, roles, source object, function) is a
  # for_each over this map; tests/test_terraform.py checks it against
  # common.scheduling.schedules.FUNCTIONS and functions/<name>/main.py. Per function:
  #   entry_point        the @functions_framework.http function in functions/<name>/main.py
  #   memory .. min_instances   defaults that var.functions overrides
  #   bigquery           "write": dataEditor on the dataset; "read": dataViewer and read
  #                      sessions; either also runs query jobs
  #   tables_written     tables it appends to without write access to the dataset
  #   artifacts          "write": objectAdmin on the artifact bucket (models); "read": objectViewer
  #   writes_under       objectUser under this folder of the artifact bucket only
  #                      (predict: serving/, the snapshot; monitor: health/, the status)
  #   reads_imports      objectViewer on imports/ of the artifact bucket only (ingest: the
  #                      user's places, imports/locations.toml, and uploaded csv history)
  #   reads_aqicn_token  gets the aqicn-token secret as AIRCAST_AQICN_TOKEN
  #   reads_openaq_api_key  gets the openaq-api-key secret as AIRCAST_OPENAQ_API_KEY
  #   environment        settings of this function alone, on top of local.environment
  # Which functions Cloud Scheduler calls is not listed here: it follows schedules.json.
  function_defaults = {
    ingest = {
      entry_point          = "ingest"
      memory               = "1Gi"
      cpu                  = null
      timeout_seconds      = local.timeouts.ingest
      max_instances        = 2
      min_instances        = 0
      concurrency          = 1
      bigquery             = "write"
      tables_written       = []
      artifacts            = null
      writes_under         = null
      reads_imports        = true
      reads_aqicn_token    = true
      reads_openaq_api_key = true
      environment          = {}
    }
    train = {
      entry_point          = "train"
      memory               = "2Gi" # peak 0.9 GB at 10,000 locations x 365 days (bench/scale_train.py)
      cpu                  = "2"
      timeout_seconds      = local.timeouts.train
      max_instances        = 1
      min_instances        = 0
      concurrency          = 1
      bigquery             = "read"
      tables_written       = ["runs", "air_quality_forecast_days"] # the latter: the one seed of CAMS issue days landed before it (common/train/inputs.py)
      artifacts            = "write"
      writes_under         = null
      reads_imports        = false
      reads_aqicn_token    = false
      reads_openaq_api_key = false
      environment          = {}
    }
    predict = {
      entry_point          = "predict"
      memory               = "2Gi"
      cpu                  = "1"
      timeout_seconds      = local.timeouts.predict
      max_instances        = 2
      min_instances        = 0
      concurrency          = 1
      bigquery             = "read"
      tables_written       = ["runs", "forecasts", "interval_offsets", "combination_weights", "place_combination_weights"]
      artifacts            = "read"
      writes_under         = "serving/"
      reads_imports        = false
      reads_aqicn_token    = false
      reads_openaq_api_key = false
      environment          = {}
    }
    monitor = {
      entry_point          = "monitor"
      memory               = "1Gi"
      cpu                  = "1"
      timeout_seconds      = local.timeouts.monitor
      max_instances        = 1
      min_instances        = 0
      concurrency          = 1
      bigquery             = "read"
      tables_written       = ["runs"]
      artifacts            = "read"
      writes_under         = "health/"
      reads_imports        = false
      reads_aqicn_token    = false
      reads_openaq_api_key = false
      environment          = {}
    }
    api = {
      entry_point          = "api"
      memory               = "1Gi" # 608 MiB at 100,000 locations served over HTTP, every part held and looked up (bench/api_served.py; 1,566 end to end when parts were parsed whole)
      cpu                  = "1"
      timeout_seconds      = local.timeouts.api
      max_instances        = 5
      min_instances        = 0
      concurrency          = 32
      bigquery             = null
      tables_written       = []
      artifacts            = "read"
      writes_under         = null
      reads_imports        = false
      reads_aqicn_token    = false
      reads_openaq_api_key = false
      environment          = local.api_environment
    }
  }

  # The defaults with the caller's overrides (var.functions) on top.
  functions = {
    for name, f in local.function_defaults :
    name => merge(f, { for k, v in try(var.functions[name], {}) : k => v if v != null })
  }

  # A sharded schedule (predict) becomes one job per shard, named and bodied as
  # common.scheduling.schedules.expand does: <name>-shard-<k>, {"shard": k, "shards": N}.
  schedules = merge([
    for s in jsondecode(file("${path.module}/schedules.json")) : (
      s.sharded && var.predict_shards > 1
      ? {
        for k in range(var.predict_shards) : "${s.name}-shard-${k}" => merge(s, {
          body        = merge(s.body, { shard = k, shards = var.predict_shards })
          description = "${s.description} Shard ${k}."
        })
      }
      : { (s.name) = s }
    )
  ]...)
  # Request timeouts from common/core/deploy.py (a run past its timeout shows as lost).
  timeouts = jsondecode(file("${path.module}/functions.json")).timeout_seconds
  tables   = jsondecode(file("${path.module}/tables.json"))

  artifact_bucket = coalesce(var.artifact_bucket, "${var.project_id}-aircast-artifacts")
  source_bucket   = coalesce(var.source_bucket, "${var.project_id}-aircast-sources")
  packages_dir    = coalesce(var.packages_dir, "${path.module}/../build/packages")

  # What every function reads (common/core/config.py); secrets are added per function.
  environment = merge({
    AIRCAST_BACKEND        = "gcp"
    GOOGLE_CLOUD_PROJECT   = var.project_id
    AIRCAST_DATASET        = var.dataset
    AIRCAST_BUCKET         = local.artifact_bucket
    AIRCAST_BQ_LOCATION    = var.bq_location
    AIRCAST_REGION         = var.region
    AIRCAST_SOURCE         = var.ingest_source
    AIRCAST_LOG_LEVEL      = var.log_level
    AIRCAST_PREDICT_SHARDS = tostring(var.predict_shards)
  }, var.environment)
  # A public api is read-only: the dashboard and the GET routes, never POST /v1/predict
  # (an online prediction costs a model load and CPU that anyone could then spend).
  api_environment = var.api_public ? { AIRCAST_API_READ_ONLY = "true" } : {}
}
