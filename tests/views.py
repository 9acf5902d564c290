"""What users read must hold one row per key whatever the raw tables hold: the check shared
by the concurrency and fault-injection tests (kept in common so bench/soak.py shares it)."""

from common.warehouse.view_keys import VIEW_KEYS, duplicates

__all__ = ["VIEW_KEYS", "duplicates"]
