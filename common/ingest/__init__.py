"""The ingest job: a source's window validated row by row and landed in the warehouse."""
