"""Sources by name: the adapter class of each source in `common.core.catalog`.

An adapter's module is imported only when its source is chosen, so a function that ingests
from Open-Meteo never loads the csv reader (and a missing optional dependency of one
adapter cannot break the others).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from common.core.catalog import DEFAULT_SOURCE, SOURCE_NAMES, SOURCES, SourceInfo
from common.core.config import Settings
from common.sources.base import Batch, Location, Rejection, Source, Window

__all__ = [
    "ADAPTERS",
    "BACKFILL_CHUNK_DAYS",
    "SOURCES",
    "SOURCE_NAMES",
    "Batch",
    "Location",
    "Rejection",
    "Source",
    "SourceInfo",
    "Window",
    "default_source",
    "make_source",
    "source_class",
]

# name -> "module:class" of its adapter, imported on first use.
ADAPTERS: dict[str, str] = {
    "open-meteo": "common.sources.open_meteo:OpenMeteoSource",
    "data-gov-sg": "common.sources.data_gov_sg:DataGovSgSource",
    "aqicn": "common.sources.aqicn:AqicnSource",
    "csv": "common.sources.csv_files:CsvSource",
    "synthetic": "common.sources.synthetic:SyntheticSource",
    "openaq": "common.sources.openaq:OpenAQSource",
}

BACKFILL_CHUNK_DAYS: dict[str, int] = {n: s.backfill_chunk_days for n, s in SOURCES.items()}


def default_source(settings: Settings) -> str:
    """AIRCAST_SOURCE, else open-meteo on Google Cloud and synthetic locally (offline)."""
    return settings.source or DEFAULT_SOURCE[settings.backend]


def source_class(name: str) -> type[Source]:
    """The adapter class of source `name` (its module imported now)."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown source {name!r}; one of {', '.join(SOURCE_NAMES)}")
    module, _, cls = ADAPTERS[name].partition(":")
    adapter: type[Source] = getattr(importlib.import_module(module), cls)
    return adapter


def make_source(name: str, settings: Settings, path: str | Path | None = None) -> Source:
    """Source `name`; `path` (default AIRCAST_CSV_PATH) is read by file sources only."""
    cls = source_class(name)
    if SOURCES[name].reads_files:
        return cls(settings, path or settings.csv_path)  # type: ignore[call-arg]
    return cls(settings)
