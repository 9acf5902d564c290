"""The ingest job and function."""
