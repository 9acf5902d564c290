# aircast in one project: this root configuration owns the provider and the state backend,
# the module (../..) everything else. `make package` must have written build/packages/
# first: the module uploads the zips from there.

provider "google" {
  project = var.project_id
  region  = var.region
}

module "aircast" {
  source = "../.."

  project_id          = var.project_id
  region              = var.region
  bq_location         = var.bq_location
  dataset             = var.dataset
  api_public          = var.api_public
  api_invokers        = var.api_invokers
  aqicn_token_set     = var.aqicn_token_set
  openaq_api_key_set  = var.openaq_api_key_set
  deletion_protection = var.deletion_protection
  billing_account     = var.billing_account
  budget_amount_usd   = var.budget_amount_usd
}
