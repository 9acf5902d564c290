"""The ingest settings: which source, which locations, how far back, the public APIs' base
URLs and the OpenAQ request budget. One group of `common.core.config.Settings`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from common.core.catalog import SOURCE_NAMES
from common.core.config_section import Section


class IngestSettings(Section):
    """Where observations and weather come from."""

    # --- ingest --------------------------------------------------------------------------
    # Literal[<the names in common.core.catalog>]: pydantic checks it and lists the choices.
    source: Literal[SOURCE_NAMES] | None = Field(  # type: ignore[valid-type]
        None, description="Default ingest source (default: open-meteo on gcp, else synthetic)."
    )
    locations_file: Path | None = Field(
        None,
        description="Locations to ingest and forecast (default: common/runtime/locations.toml).",
    )
    ingest_lookback_hours: int = Field(
        6,
        ge=1,
        le=24 * 31,
        description="A scheduled ingest re-reads this many hours before as_of (late data).",
    )
    backfill_chunk_days: int | None = Field(
        None, ge=1, le=366, description="Days per backfill run (default: per source)."
    )
    csv_path: Path | None = Field(
        None,
        description="The file or folder the csv source reads (its default, and the only root "
        "a request's path may name).",
    )
    run_timeout_seconds: int | None = Field(
        None,
        ge=1,
        le=3600,
        description="Seconds after which a run that never finished shows as lost in "
        "run_status (default: its function's timeout, common/core/deploy.py); train starts "
        "its optional backtest folds only while this deadline leaves room for them.",
    )
    max_clock_skew_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description="How far a run's as_of may lie after the real clock (a scheduler's clock "
        "a little fast); a later as_of is a 400. Replays simulate past hours, unaffected.",
    )
    max_request_bytes: int = Field(
        2 * 2**20,
        ge=1024,
        le=32 * 2**20,
        description="Largest request body any function accepts (larger: 413).",
    )
    synthetic_seed: int = Field(7, description="Seed of the synthetic source.")
    aqicn_token: SecretStr | None = Field(
        None, description="AQICN token (a Secret Manager secret on Google Cloud); never logged."
    )
    http_timeout_seconds: float = Field(
        30.0, gt=0, le=300, description="Timeout of each request to a public API."
    )
    http_retries: int = Field(
        4,
        ge=0,
        le=10,
        description="Retries with backoff (honouring Retry-After) on 429, 5xx, lost connections.",
    )
    # Base URLs of the public APIs (tests point them at a local server).
    open_meteo_url: str = Field(
        "https://api.open-meteo.com/v1/forecast", description="Open-Meteo weather API."
    )
    open_meteo_archive_url: str = Field(
        "https://archive-api.open-meteo.com/v1/archive",
        description="Open-Meteo weather archive (windows older than about 3 months).",
    )
    open_meteo_previous_runs_url: str = Field(
        "https://previous-runs-api.open-meteo.com/v1/forecast",
        description="Open-Meteo Previous Runs API: past weather forecasts as issued 1-7 days "
        "before (backfill of weather_forecasts).",
    )
    open_meteo_historical_forecast_url: str = Field(
        "https://historical-forecast-api.open-meteo.com/v1/forecast",
        description="Open-Meteo Historical Forecast API: the first hours of each past run, "
        "stitched (closer to an analysis); the backfill's fallback where Previous Runs has "
        "nothing.",
    )
    open_meteo_air_url: str = Field(
        "https://air-quality-api.open-meteo.com/v1/air-quality",
        description="Open-Meteo air-quality (CAMS) API.",
    )
    data_gov_sg_url: str = Field(
        "https://api-open.data.gov.sg/v2/real-time/api/pm25", description="data.gov.sg PM2.5 API."
    )
    aqicn_url: str = Field("https://api.waqi.info", description="AQICN / WAQI API.")
    # --- OpenAQ (API v3): which locations, the key, and the request budget ----------------
    openaq_api_key: SecretStr | None = Field(
        None,
        description="OpenAQ API key, sent as X-API-Key (a Secret Manager secret on Google "
        "Cloud); never logged.",
    )
    openaq_url: str = Field("https://api.openaq.org/v3", description="OpenAQ API v3.")
    openaq_bbox: str | None = Field(
        None,
        description="OpenAQ discovery: locations inside minLon,minLat,maxLon,maxLat (WGS84).",
    )
    openaq_countries: str | None = Field(
        None,
        description="OpenAQ discovery: ISO 3166-1 alpha-2 codes, comma-separated (e.g. US,GB).",
    )
    openaq_providers: str | None = Field(
        None, description="OpenAQ discovery: provider ids, comma-separated (e.g. 119 = AirNow)."
    )
    openaq_monitors_only: bool = Field(
        False, description="OpenAQ discovery: reference monitors only (no low-cost sensors)."
    )
    openaq_requests_per_minute: int = Field(
        60, ge=1, description="OpenAQ requests a minute per key (free tier: 60)."
    )
    openaq_requests_per_hour: int = Field(
        2000, ge=1, description="OpenAQ requests an hour per key (free tier: 2,000)."
    )
    openaq_requests_per_run: int = Field(
        480,
        ge=1,
        description="OpenAQ requests one scheduled ingest may make (480 at 60 a minute: "
        "8 minutes, inside the scheduler's 10-minute attempt); see docs/data.md.",
    )

    @field_validator("openaq_bbox")
    @classmethod
    def _bbox(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            lon0, lat0, lon1, lat1 = (float(v) for v in value.split(","))
        except ValueError:
            raise ValueError("must be minLon,minLat,maxLon,maxLat (four numbers)") from None
        if not (-180 <= lon0 < lon1 <= 180 and -90 <= lat0 < lat1 <= 90):
            raise ValueError("must be minLon,minLat,maxLon,maxLat with min < max, in range")
        return value

    @field_validator("openaq_countries")
    @classmethod
    def _countries(cls, value: str | None) -> str | None:
        if value is None:
            return None
        codes = [c.strip().upper() for c in value.split(",")]
        if not all(re.fullmatch(r"[A-Z]{2}", c) for c in codes):
            raise ValueError("must be ISO 3166-1 alpha-2 codes, comma-separated (e.g. US,GB)")
        return ",".join(codes)

    @field_validator("openaq_providers")
    @classmethod
    def _providers(cls, value: str | None) -> str | None:
        if value is None:
            return None
        ids = [c.strip() for c in value.split(",")]
        if not all(i.isdigit() for i in ids):
            raise ValueError("must be provider ids, comma-separated (e.g. 119,120)")
        return ",".join(ids)
