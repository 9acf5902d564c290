"""The Warehouse port and its adapters, chosen by AIRCAST_BACKEND."""

from __future__ import annotations

from common.core.config import Settings
from common.warehouse.base import Warehouse, WarehouseError

__all__ = ["Warehouse", "WarehouseError", "open_warehouse"]


def open_warehouse(settings: Settings) -> Warehouse:
    """DuckDB locally, BigQuery on Google Cloud. Heavy clients import only when chosen."""
    if settings.backend == "gcp":
        from common.warehouse.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(settings)
    from common.warehouse.duckdb_warehouse import DuckDBWarehouse

    return DuckDBWarehouse(settings)
