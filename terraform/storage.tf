# Models and the serving snapshot. Versioned, so an overwritten production pointer or
# snapshot can be restored; noncurrent versions are deleted after a while. Model versions
# themselves are immutable paths (models/<name>/<version>/) and are kept.
resource "google_storage_bucket" "artifacts" {
  #checkov:skip=CKV_GCP_62:Usage logs are a legacy feature; Cloud Audit Logs record data access instead, and a log bucket would need its own log bucket.
  project                     = var.project_id
  name                        = local.artifact_bucket
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = var.noncurrent_versions_kept
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_days_kept
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

# The functions' source zips; object names carry the zip's hash.
resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Usage logs are a legacy feature; Cloud Audit Logs record data access instead, and a log bucket would need its own log bucket.
  project                     = var.project_id
  name                        = local.source_bucket
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # only build outputs: make package recreates them

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_storage_bucket_object" "source" {
  for_each = local.functions
  # A new name for new contents: 2nd-gen functions only redeploy when the object changes.
  name   = "${each.key}-${filesha256("${local.packages_dir}/${each.key}.zip")}.zip"
  bucket = google_storage_bucket.sources.name
  source = "${local.packages_dir}/${each.key}.zip"
}

# The deployment's own places (var.locations_toml), read by ingest at its next run.
resource "google_storage_bucket_object" "locations" {
  count        = var.locations_toml == null ? 0 : 1
  bucket       = google_storage_bucket.artifacts.name
  name         = "imports/locations.toml"
  content      = var.locations_toml
  content_type = "application/toml"
}
