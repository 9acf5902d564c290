"""The Warehouse port's contract on DuckDB and the BigQuery emulator."""
