terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.45"
    }
  }

  # State lives in a bucket you create once (see README "Deploy to Google Cloud"):
  # terraform init -backend-config="bucket=<state bucket>" -backend-config="prefix=aircast"
  backend "gcs" {}
}

provider "google" {
  project = var.project
  region  = var.region
}
