terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.45"
    }
  }

  # State lives in a bucket you create once; name it at init:
  #   terraform init -backend-config="bucket=<state bucket>" -backend-config="prefix=aircast"
  # To try the example without a bucket, comment this out (state then stays in this folder).
  backend "gcs" {}
}
