# A module: the caller configures the google provider and the state backend (see
# examples/basic); only the versions it works with are fixed here.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.45"
    }
  }
}
