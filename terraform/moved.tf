# Renames from when each of these bindings named its one function; the function map now
# derives them (main.tf). Kept so that existing state moves instead of being recreated.

moved {
  from = google_bigquery_dataset_iam_member.ingest_writes
  to   = google_bigquery_dataset_iam_member.writes["ingest"]
}

moved {
  from = google_storage_bucket_iam_member.train_writes_models
  to   = google_storage_bucket_iam_member.writes_artifacts["train"]
}

moved {
  from = google_storage_bucket_iam_member.predict_writes_snapshot
  to   = google_storage_bucket_iam_member.writes_snapshot["predict"]
}

moved {
  from = google_storage_bucket_iam_member.writes_snapshot["predict"]
  to   = google_storage_bucket_iam_member.writes_under["predict"]
}

moved {
  from = google_secret_manager_secret_iam_member.ingest_reads_aqicn_token
  to   = google_secret_manager_secret_iam_member.reads_aqicn_token["ingest"]
}
