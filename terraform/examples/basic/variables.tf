# What a deployment usually sets; the module's other inputs keep their defaults (see
# ../../README.md). Types and defaults are the module's (a test keeps them equal).

variable "project_id" {
  description = "Google Cloud project id to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the functions, the scheduler jobs and the buckets."
  type        = string
  default     = "us-central1"
}

variable "bq_location" {
  description = "BigQuery dataset location (a multi-region such as US or EU, or a region)."
  type        = string
  default     = "US"
}

variable "dataset" {
  description = "BigQuery dataset that holds the tables and views."
  type        = string
  default     = "aircast"
}

variable "api_public" {
  description = "Let anyone call the api function (read-only forecasts)."
  type        = bool
  default     = false
}

variable "api_invokers" {
  description = "Members allowed to call a private api, e.g. [\"user:me@example.com\"]."
  type        = list(string)
  default     = []
}

variable "aqicn_token_set" {
  description = "Set to true once the aqicn-token secret has a version."
  type        = bool
  default     = false
}

variable "openaq_api_key_set" {
  description = "Set to true once the openaq-api-key secret has a version."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Protect the BigQuery tables from terraform destroy."
  type        = bool
  default     = true
}

variable "billing_account" {
  description = "Billing account id for the optional monthly budget (with budget_amount_usd)."
  type        = string
  default     = null
}

variable "budget_amount_usd" {
  description = "Monthly budget in USD; null: no budget."
  type        = number
  default     = null
}
