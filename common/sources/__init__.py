"""Sources by name. Each module is imported only when chosen."""

from __future__ import annotations

from pathlib import Path

from common.core.config import Settings
from common.sources.base import Batch, Location, Rejection, Source, Window

__all__ = [
    "BACKFILL_CHUNK_DAYS",
    "SOURCES",
    "Batch",
    "Location",
    "Rejection",
    "Source",
    "Window",
    "default_source",
    "make_source",
]

SOURCES = ("open-meteo", "data-gov-sg", "aqicn", "csv", "synthetic")

# Days per run of `aircast backfill` unless AIRCAST_BACKFILL_CHUNK_DAYS says otherwise.
# Open-Meteo bills a request by its days beyond 14 (so 14 costs one call per place);
# data.gov.sg is fetched a day per request anyway; local sources only trade memory for
# fewer runs (see docs/benchmarks.md). AQICN has no history.
BACKFILL_CHUNK_DAYS = {"open-meteo": 14, "data-gov-sg": 7, "aqicn": 1, "csv": 92, "synthetic": 31}


def default_source(settings: Settings) -> str:
    """AIRCAST_SOURCE, else open-meteo on Google Cloud and synthetic locally (offline)."""
    return settings.source or ("open-meteo" if settings.backend == "gcp" else "synthetic")


def make_source(name: str, settings: Settings, path: str | Path | None = None) -> Source:
    if name == "synthetic":
        from common.sources.synthetic import SyntheticSource

        return SyntheticSource(settings)
    if name == "csv":
        from common.sources.csv_files import CsvSource

        return CsvSource(settings, path or settings.csv_path)
    if name == "open-meteo":
        from common.sources.open_meteo import OpenMeteoSource

        return OpenMeteoSource(settings)
    if name == "data-gov-sg":
        from common.sources.data_gov_sg import DataGovSgSource

        return DataGovSgSource(settings)
    if name == "aqicn":
        from common.sources.aqicn import AqicnSource

        return AqicnSource(settings)
    raise ValueError(f"unknown source {name!r}; one of {', '.join(SOURCES)}")
