# Shared names and the inputs generated from `common` (make generate): schedules.json from
# common/schedules.py, tables.json and schemas/ from common/schema.py.

locals {
  # Function name -> entry point (the @functions_framework.http function in its main.py).
  entry_points = {
    ingest  = "ingest"
    train   = "train"
    predict = "predict"
    api     = "api"
  }

  schedules = { for s in jsondecode(file("${path.module}/schedules.json")) : s.name => s }
  tables    = jsondecode(file("${path.module}/tables.json"))

  artifact_bucket = coalesce(var.artifact_bucket, "${var.project}-aircast-artifacts")
  source_bucket   = coalesce(var.source_bucket, "${var.project}-aircast-sources")
  packages_dir    = coalesce(var.packages_dir, "${path.module}/../build/packages")

  # What every function reads (common/config.py); secrets are added per function.
  environment = merge({
    AIRCAST_BACKEND      = "gcp"
    GOOGLE_CLOUD_PROJECT = var.project
    AIRCAST_DATASET      = var.dataset
    AIRCAST_BUCKET       = local.artifact_bucket
    AIRCAST_BQ_LOCATION  = var.bq_location
    AIRCAST_REGION       = var.region
    AIRCAST_SOURCE       = var.ingest_source
    AIRCAST_LOG_LEVEL    = var.log_level
  }, var.environment)
}
