"""Terraform and Cloud Build, checked offline against the code."""
