"""The process-wide adapters, built once per (warm) instance from the settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.core.config import Settings, get_settings
from common.core.logs import configure_logging
from common.storage import ArtifactStore, open_store

if TYPE_CHECKING:  # the warehouse pulls in pandas; the api, which never queries it, must not
    from common.warehouse import Warehouse


@dataclass(frozen=True)
class Services:
    settings: Settings
    warehouse: Warehouse
    store: ArtifactStore


@functools.cache
def get_services() -> Services:
    """Settings, warehouse and artifact store for this process (cached; tests reset it)."""
    from common.warehouse import open_warehouse

    settings = get_settings()
    configure_logging(settings.log_level)
    return Services(settings, open_warehouse(settings), get_store())


@functools.cache
def get_store() -> ArtifactStore:
    """The artifact store alone, for code that must stay light (the api's cold start)."""
    return open_store(get_settings())


def reset() -> None:
    """Forget cached settings and adapters (after the environment changed)."""
    get_services.cache_clear()
    get_store.cache_clear()
    get_settings.cache_clear()
