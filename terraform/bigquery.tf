# The dataset, its tables (schemas generated from common/schema.py into schemas/*.json)
# and views (schemas/*.sql). Partitioning and clustering come from tables.json, which is
# generated from the same definitions.

resource "google_bigquery_dataset" "aircast" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; CMEK would add a KMS key to run and pay for without protecting public air-quality data any better.
  project                    = var.project_id
  dataset_id                 = var.dataset
  location                   = var.bq_location
  description                = "aircast: air-quality observations, forecasts and run audit."
  delete_contents_on_destroy = false
  depends_on                 = [google_project_service.api]
}

resource "google_bigquery_table" "table" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption; CMEK would add a KMS key to run and pay for without protecting public air-quality data any better.
  for_each            = { for name, t in local.tables : name => t if t.kind == "table" }
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.aircast.dataset_id
  table_id            = each.key
  description         = each.value.description
  schema              = file("${path.module}/schemas/${each.key}.json")
  clustering          = length(each.value.cluster_by) > 0 ? each.value.cluster_by : null
  deletion_protection = var.deletion_protection

  dynamic "time_partitioning" {
    for_each = each.value.partition_by == null ? [] : [each.value.partition_by]
    content {
      type  = "DAY"
      field = time_partitioning.value
      # retention from common/core/schema.py: BigQuery deletes a day's partition this long
      # after the day (null keeps it)
      expiration_ms = each.value.retention_days == null ? null : each.value.retention_days * 86400000
    }
  }
}

# Views read tables only (wave 1) ...
resource "google_bigquery_table" "view" {
  #checkov:skip=CKV_GCP_80:A view stores no data; encryption applies to the tables it reads.
  for_each            = { for name, t in local.tables : name => t if t.kind == "view" && t.wave == 1 }
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.aircast.dataset_id
  table_id            = each.key
  description         = each.value.description
  deletion_protection = var.deletion_protection

  view {
    query          = templatefile("${path.module}/schemas/${each.key}.sql", { project = var.project_id, dataset = var.dataset })
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.table]
}

# ... or other views (wave 2), which must exist before these are created.
resource "google_bigquery_table" "view_on_views" {
  #checkov:skip=CKV_GCP_80:A view stores no data; encryption applies to the tables it reads.
  for_each            = { for name, t in local.tables : name => t if t.kind == "view" && t.wave == 2 }
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.aircast.dataset_id
  table_id            = each.key
  description         = each.value.description
  deletion_protection = var.deletion_protection

  view {
    query          = templatefile("${path.module}/schemas/${each.key}.sql", { project = var.project_id, dataset = var.dataset })
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.table, google_bigquery_table.view]
}
