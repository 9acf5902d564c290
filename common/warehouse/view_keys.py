"""The key of every view: what users read must hold one row per key whatever the raw tables
hold. Shared by the concurrency and fault-injection tests and the soak benchmark."""

from __future__ import annotations

from common.core.views import VIEWS
from common.warehouse.base import Warehouse

# The key of every view (its QUALIFY partition, or what its join keeps unique).
VIEW_KEYS: dict[str, tuple[str, ...]] = {
    "current_locations": ("location_id",),
    "observations": ("location_id", "ts"),
    "latest_forecasts": ("location_id", "target", "target_ts"),
    "run_status": ("run_id",),
    "forecast_accuracy": ("model_version", "location_id", "target", "issued_at", "target_ts"),
    "forecast_aqi": ("location_id", "target", "target_ts"),
}


def duplicates(warehouse: Warehouse) -> dict[str, int]:
    """View -> number of keys held more than once (every view must be listed above)."""
    missing = set(VIEWS) ^ set(VIEW_KEYS)
    if missing:
        raise AssertionError(
            f"a new view needs its key in common/warehouse/view_keys.py: {missing}"
        )
    out = {}
    for view, key in VIEW_KEYS.items():
        cols = ", ".join(key)
        found = warehouse.query(
            f"SELECT {cols}, COUNT(*) AS n FROM {view} GROUP BY {cols} HAVING COUNT(*) > 1"
        )
        out[view] = len(found)
    return out
