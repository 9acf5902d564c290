"""Build-time tooling run from the repository (generate Terraform inputs, package the functions);
not part of the installed package or any function zip.
"""
