"""The Source port: fetch hourly observations for locations over a time window.

A source returns what it got, unvalidated: an `observations` frame (location_id, ts,
Open-Meteo-named variable columns, plus a `payload` column with the raw input for
quarantine), rows it could not even parse, per-location failures, the locations it
discovered (csv files, API region lists), and weather and air-quality model (CAMS)
forecasts for future hours when the API offers them, issued at the run's as_of.
`common.ingest.validation` decides what lands.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from common.core.config import Settings
from common.core.redaction import redact, redact_value, remember


@dataclass(frozen=True)
class Location:
    location_id: str
    name: str
    latitude: float | None
    longitude: float | None
    source: str
    timezone: str = "UTC"
    active: bool = True
    # What the place measures, as the source described it (OpenAQ: JSON list of sensors
    # with their id, parameter and unit); None when the source says nothing.
    sensors: str | None = None


@dataclass(frozen=True)
class Window:
    """Observations with start <= ts <= end are wanted; nothing after as_of is kept."""

    start: dt.datetime
    end: dt.datetime
    as_of: dt.datetime
    live: bool  # the run is about "now": weather forecasts for future hours are meaningful


@dataclass
class Rejection:
    location_id: str | None
    ts: Any
    reason: str
    payload: Any


@dataclass
class Batch:
    observations: pd.DataFrame = field(default_factory=pd.DataFrame)
    rejected: list[Rejection] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # location_id -> error
    locations: list[Location] = field(default_factory=list)
    weather_forecasts: pd.DataFrame = field(default_factory=pd.DataFrame)
    air_quality_forecasts: pd.DataFrame = field(default_factory=pd.DataFrame)  # CAMS

    def extend(self, other: Batch) -> None:
        for name in ("observations", "weather_forecasts", "air_quality_forecasts"):
            frames = [f for f in (getattr(self, name), getattr(other, name)) if not f.empty]
            setattr(self, name, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
        self.rejected += other.rejected
        self.failed.update(other.failed)
        self.locations += other.locations


class Source(ABC):
    """A named source of hourly observations."""

    name: str
    needs_locations: bool = True  # False: the source discovers its own (csv files)
    keeps_past_forecasts: bool = False  # past_forecasts() answers (an archive of forecasts)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        remember(settings)  # its secrets are redacted from whatever it hands over

    def redacted(self, batch: Batch) -> Batch:
        """`batch` with the one redaction applied to every text it carries to be stored or
        answered: rejected payloads and reasons, per-location errors, place names, raw
        payloads. An API that echoes its request (a URL with a token, a key header) in an
        error page or a malformed answer must not land the secret in a table."""
        batch.rejected = [
            Rejection(r.location_id, r.ts, redact(str(r.reason)), redact_value(r.payload))
            for r in batch.rejected
        ]
        batch.failed = {k: redact(v) for k, v in batch.failed.items()}
        batch.locations = [
            dataclasses.replace(loc, name=redact(loc.name)) for loc in batch.locations
        ]
        obs = batch.observations
        if not obs.empty and "payload" in obs.columns:
            obs["payload"] = obs["payload"].map(redact_value)
        return batch

    @abstractmethod
    def fetch(self, locations: list[Location], window: Window) -> Batch:
        """Observations for `locations` in `window` (one failing location fails alone)."""

    def past_forecasts(self, locations: list[Location], window: Window, horizon: int) -> Batch:
        """Forecasts for the hours of `window` as they were issued before them (rows with
        their own issued_at and kind), as far as the source archives them; for `horizon`."""
        raise NotImplementedError(f"{self.name} keeps no past forecasts")


def payload_text(value: Any, limit: int = 20_000) -> str:
    """The offending input as JSON text for `rejected_rows.payload` (bounded in size)."""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        text = json.dumps(str(value))
    return text if len(text) <= limit else text[:limit] + "...(truncated)"
