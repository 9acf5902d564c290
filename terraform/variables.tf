variable "project_id" {
  description = "Google Cloud project id to deploy into."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id: 6-30 lowercase letters, digits or hyphens."
  }
}

variable "region" {
  description = "Region of the functions, the scheduler jobs and the buckets."
  type        = string
  default     = "us-central1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "bq_location" {
  description = "BigQuery dataset location (a multi-region such as US or EU, or a region)."
  type        = string
  default     = "US"
  validation {
    condition     = can(regex("^([A-Z]{2}|[a-z]+-[a-z]+[0-9]+)$", var.bq_location))
    error_message = "bq_location must be a multi-region (US, EU) or a region (us-central1)."
  }
}

variable "dataset" {
  description = "BigQuery dataset that holds the tables and views (AIRCAST_DATASET)."
  type        = string
  default     = "aircast"
  validation {
    # RE2 refuses repeat counts above 1000, hence the length() beside the regex.
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]*$", var.dataset)) && length(var.dataset) <= 1024
    error_message = "dataset must be at most 1024 letters, digits and underscores, not starting with a digit."
  }
}

variable "artifact_bucket" {
  description = "Name of the bucket for models and the serving snapshot (default: <project_id>-aircast-artifacts)."
  type        = string
  default     = null
  validation {
    condition     = var.artifact_bucket == null || can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.artifact_bucket))
    error_message = "artifact_bucket must be a valid bucket name (3-63 lowercase characters)."
  }
}

variable "source_bucket" {
  description = "Name of the bucket for the functions' source zips (default: <project_id>-aircast-sources)."
  type        = string
  default     = null
  validation {
    condition     = var.source_bucket == null || can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.source_bucket))
    error_message = "source_bucket must be a valid bucket name (3-63 lowercase characters)."
  }
}

variable "packages_dir" {
  description = "Folder holding the zips that `make package` writes (default: ../build/packages)."
  type        = string
  default     = null
}

variable "ingest_source" {
  description = "Default source of scheduled ingests (AIRCAST_SOURCE)."
  type        = string
  default     = "open-meteo"
  validation {
    condition     = contains(["open-meteo", "data-gov-sg", "aqicn", "openaq"], var.ingest_source)
    error_message = "ingest_source must be open-meteo, data-gov-sg, aqicn or openaq (csv and synthetic are local only)."
  }
}

variable "predict_shards" {
  description = "Predict shards: one Cloud Scheduler job per shard, each forecasting the locations whose id hashes to it (AIRCAST_PREDICT_SHARDS). About 10,000-20,000 locations per shard (in batches of AIRCAST_PREDICT_BATCH_LOCATIONS); at most 60, since each shard appends its forecasts as one load job per target every hour and BigQuery allows 1,500 load jobs per table per day (60 x 24 = 1,440, room for retries and replays); with several AIRCAST_TARGETS keep shards x targets <= 60. 60 shards of 16,700 locations serve 1,000,000; see docs/scale.md."
  type        = number
  default     = 1
  validation {
    condition     = var.predict_shards >= 1 && var.predict_shards <= 60 && floor(var.predict_shards) == var.predict_shards
    error_message = "predict_shards must be a whole number from 1 to 60 (the forecasts table's 1,500 load jobs a day)."
  }
}

variable "aqicn_token_set" {
  description = "Set to true once the aqicn-token secret has a version: ingest then gets AIRCAST_AQICN_TOKEN from it."
  type        = bool
  default     = false
}

variable "openaq_api_key_set" {
  description = "Set to true once the openaq-api-key secret has a version: ingest then gets AIRCAST_OPENAQ_API_KEY from it."
  type        = bool
  default     = false
}

variable "api_public" {
  description = "Open the api to everyone, read-only: the dashboard and the GET routes answer anyone, POST /v1/predict answers 403 (AIRCAST_API_READ_ONLY). Off: only api_invokers (and project Owners/Editors) may call it, e.g. through `gcloud run services proxy` (docs/deploy.md). Ingest, train, predict and monitor are always private."
  type        = bool
  default     = false
}

variable "api_invokers" {
  description = "Members allowed to call a private api, e.g. [\"user:me@example.com\", \"serviceAccount:app@p.iam.gserviceaccount.com\"]."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.api_invokers : can(regex("^(user|group|serviceAccount|domain):", m))])
    error_message = "api_invokers must be IAM members (user:, group:, serviceAccount: or domain:); use api_public for everyone."
  }
}

variable "functions" {
  description = "Overrides of the resources per function, e.g. { train = { memory = \"8Gi\" } }; the defaults are in the Functions table (main.tf's local.function_defaults)."
  type = map(object({
    memory          = optional(string)
    cpu             = optional(string)
    timeout_seconds = optional(number)
    max_instances   = optional(number)
    min_instances   = optional(number)
    concurrency     = optional(number)
  }))
  default = {}
  validation {
    condition     = alltrue([for f in values(var.functions) : coalesce(f.timeout_seconds, 60) >= 1 && coalesce(f.timeout_seconds, 60) <= 3600])
    error_message = "timeout_seconds must be within 1..3600 (HTTP functions run at most 60 minutes)."
  }
}

variable "environment" {
  description = "Extra AIRCAST_* settings for every function (see the README's Configuration), e.g. { AIRCAST_HORIZON = \"48\" }."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for k in keys(var.environment) : startswith(k, "AIRCAST_")])
    error_message = "environment keys must start with AIRCAST_."
  }
}

variable "log_level" {
  description = "AIRCAST_LOG_LEVEL of the functions."
  type        = string
  default     = "INFO"
  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "noncurrent_versions_kept" {
  description = "Overwritten or deleted artifact objects (production pointers, snapshots, old model files) kept per object before deletion."
  type        = number
  default     = 5
  validation {
    condition     = var.noncurrent_versions_kept >= 1
    error_message = "noncurrent_versions_kept must be at least 1."
  }
}

variable "noncurrent_days_kept" {
  description = "Days an overwritten or deleted artifact object version is kept before deletion."
  type        = number
  default     = 30
  validation {
    condition     = var.noncurrent_days_kept >= 1
    error_message = "noncurrent_days_kept must be at least 1."
  }
}

variable "deletion_protection" {
  description = "Protect the BigQuery tables from terraform destroy (set false, apply, then destroy)."
  type        = bool
  default     = true
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/<p>/notificationChannels/<id>) the alert policies notify; empty: incidents only in the console."
  type        = list(string)
  default     = []
}

variable "locations_toml" {
  description = "Your own places, as the text of a locations file (the format of common/runtime/locations.toml): written to imports/locations.toml in the artifact bucket, which ingest reads instead of the packaged file at its next run (no rebuild). Null: the object is left alone (upload it yourself, or the packaged file applies)."
  type        = string
  default     = null
}

variable "billing_account" {
  description = "Billing account id (012345-6789AB-CDEF01) for the optional budget; with budget_amount_usd set, a google_billing_budget alerts on this project's monthly spend. Null: no budget."
  type        = string
  default     = null
}

variable "budget_amount_usd" {
  description = "Monthly budget in USD for this project's spend (with billing_account); null: no budget. The cost section of docs/deploy.md says what the schedule is expected to cost."
  type        = number
  default     = null
  validation {
    condition     = var.budget_amount_usd == null ? true : var.budget_amount_usd > 0
    error_message = "budget_amount_usd must be positive (or null for no budget)."
  }
}

variable "budget_thresholds" {
  description = "Shares of budget_amount_usd at which the budget alerts (actual spend)."
  type        = list(number)
  default     = [0.5, 0.9, 1.0]
  validation {
    condition     = length(var.budget_thresholds) > 0 && alltrue([for t in var.budget_thresholds : t > 0 && t <= 10])
    error_message = "budget_thresholds must be shares above 0 (1.0 = the whole amount)."
  }
}
