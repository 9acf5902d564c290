# One service account per function, each with only what its job needs (the access
# attributes of local.functions in main.tf):
#   ingest  - write the dataset (and read the AQICN token)
#   train   - read the dataset, write models (and its runs row)
#   predict - read the dataset and models, write forecasts, the snapshot (and its runs row)
#   monitor - read the dataset, models and snapshot, write the health status (and its runs row)
#   api     - read the snapshot and models
# plus one for Cloud Scheduler (the only caller of the scheduled functions) and one that
# builds the functions' containers.

resource "google_service_account" "function" {
  for_each     = local.functions
  project      = var.project_id
  account_id   = "aircast-${each.key}"
  display_name = "aircast ${each.key} function"
  depends_on   = [google_project_service.api]
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "aircast-scheduler"
  display_name = "aircast Cloud Scheduler jobs (OIDC caller of the functions)"
  depends_on   = [google_project_service.api]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "aircast-build"
  display_name = "aircast function builds"
  depends_on   = [google_project_service.api]
}

# --- BigQuery -----------------------------------------------------------------------------

# Running queries is a project-level permission; what the queries may read is set below.
resource "google_project_iam_member" "bigquery_job_user" {
  for_each = { for name, f in local.functions : name => f if f.bigquery != null }
  project  = var.project_id
  role     = "roles/bigquery.jobUser"
  member   = google_service_account.function[each.key].member
}

# Large results are read through the BigQuery Storage Read API (the adapter's to_arrow), by
# any function that queries. (Writing through the Storage Write API needs only updateData on
# the table, which the grants below give.)
resource "google_project_iam_member" "bigquery_read_session_user" {
  for_each = { for name, f in local.functions : name => f if f.bigquery != null }
  project  = var.project_id
  role     = "roles/bigquery.readSessionUser"
  member   = google_service_account.function[each.key].member
}

resource "google_bigquery_dataset_iam_member" "writes" {
  for_each   = { for name, f in local.functions : name => f if f.bigquery == "write" }
  project    = var.project_id
  dataset_id = google_bigquery_dataset.aircast.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.function[each.key].member
}

resource "google_bigquery_dataset_iam_member" "reads" {
  for_each   = { for name, f in local.functions : name => f if f.bigquery == "read" }
  project    = var.project_id
  dataset_id = google_bigquery_dataset.aircast.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.function[each.key].member
}

# Table-level writes: every run appends its audit row to `runs`; predict appends forecasts;
# train seeds air_quality_forecast_days once (the CAMS issue days landed before it).
resource "google_bigquery_table_iam_member" "writes" {
  for_each = merge([
    for name, f in local.functions : {
      for table in f.tables_written : "${name}/${table}" => { function = name, table = table }
    }
  ]...)
  project    = var.project_id
  dataset_id = google_bigquery_dataset.aircast.dataset_id
  table_id   = google_bigquery_table.table[each.value.table].table_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.function[each.value.function].member
}

# --- Cloud Storage ------------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "writes_artifacts" {
  for_each = { for name, f in local.functions : name => f if f.artifacts == "write" }
  bucket   = google_storage_bucket.artifacts.name
  role     = "roles/storage.objectAdmin"
  member   = google_service_account.function[each.key].member
}

resource "google_storage_bucket_iam_member" "reads_artifacts" {
  for_each = { for name, f in local.functions : name => f if f.artifacts == "read" }
  bucket   = google_storage_bucket.artifacts.name
  role     = "roles/storage.objectViewer"
  member   = google_service_account.function[each.key].member
}

# A function that publishes (predict the snapshot, monitor the health status) may write
# only under its own folder, never the models it reads.
resource "google_storage_bucket_iam_member" "writes_under" {
  for_each = { for name, f in local.functions : name => f if f.writes_under != null }
  bucket   = google_storage_bucket.artifacts.name
  role     = "roles/storage.objectUser"
  member   = google_service_account.function[each.key].member
  condition {
    title      = "only-${trimsuffix(each.value.writes_under, "/")}"
    expression = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/${each.value.writes_under}\")"
  }
}

# A function that reads what a user uploads (ingest: imports/locations.toml, csv history)
# may read only under imports/, never the models or the snapshot. Listing is checked on
# the bucket, not on an object name, so a gs://<bucket>/imports/<folder> import lists
# through the request's objectListPrefix attribute, limited to imports/ as well.
resource "google_storage_bucket_iam_member" "reads_imports" {
  for_each = { for name, f in local.functions : name => f if f.reads_imports }
  bucket   = google_storage_bucket.artifacts.name
  role     = "roles/storage.objectViewer"
  member   = google_service_account.function[each.key].member
  condition {
    title      = "only-imports"
    expression = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/imports/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"imports/\")"
  }
}

# --- Builds -------------------------------------------------------------------------------

# The roles Cloud Run's "build service account" page lists for function builds: build logs,
# the image in Artifact Registry, and the staged source in Cloud Functions' own bucket.
resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
    "roles/storage.objectAdmin",
  ])
  project = var.project_id
  role    = each.key
  member  = google_service_account.build.member
}
