"""The process-wide adapters, built once per (warm) instance from the settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from common.config import Settings, get_settings
from common.logs import configure_logging
from common.storage import ArtifactStore, open_store
from common.warehouse import Warehouse, open_warehouse


@dataclass(frozen=True)
class Services:
    settings: Settings
    warehouse: Warehouse
    store: ArtifactStore


@functools.cache
def get_services() -> Services:
    """Settings, warehouse and artifact store for this process (cached; tests reset it)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return Services(settings, open_warehouse(settings), open_store(settings))


def reset() -> None:
    """Forget cached settings and adapters (after the environment changed)."""
    get_services.cache_clear()
    get_settings.cache_clear()
