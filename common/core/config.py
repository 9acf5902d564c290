"""Configuration from environment variables, validated once at start-up.

Every setting is an environment variable (see `.env.example` and the README). A bad value
raises `ConfigError` naming the variable, so a misconfigured function fails on its first
request with a readable message instead of deep inside a run.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.core.catalog import SOURCE_NAMES
from common.core.errors import AircastError, BadRequest
from common.core.schema import POLLUTANTS, TRAIN_WINDOW_MAX_DAYS, VARIABLES

HORIZON_MAX_H = 168  # the longest horizon a deployment may configure (one week)

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


class ConfigError(AircastError):
    """A setting is missing or invalid (500: the deployment's to fix); the message names the
    environment variable."""


class Settings(BaseSettings):
    """All aircast settings. Field `x` is read from `AIRCAST_X` unless an alias says otherwise."""

    model_config = SettingsConfigDict(
        env_prefix="AIRCAST_", extra="ignore", frozen=True, populate_by_name=True
    )

    backend: Literal["local", "gcp"] = Field(
        "local", description="local: DuckDB + a folder; gcp: BigQuery + Cloud Storage."
    )
    home: Path = Field(
        Path(".aircast"), description="Local state: warehouse.duckdb and artifacts/."
    )
    project: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_CLOUD_PROJECT", "AIRCAST_PROJECT"),
        description="Google Cloud project id (required for the gcp backend).",
    )
    dataset: str = Field("aircast", description="BigQuery dataset / DuckDB schema name.")
    duckdb_memory_limit: str = Field(
        "512MB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="Memory the embedded DuckDB may use per operation (larger work spills to "
        "warehouse.duckdb.tmp beside the file); with DuckDB's own default, 80% of RAM, one "
        "predict shard's read of 10,000 of 100,000 locations peaked ~700 MB above its result.",
    )
    bucket: str | None = Field(None, description="Artifact bucket (required for gcp).")
    bq_location: str = Field("US", description="BigQuery dataset location.")
    bigquery_endpoint: str | None = Field(
        None, description="BigQuery API endpoint override (emulators); anonymous credentials."
    )
    bigquery_storage_endpoint: str | None = Field(
        None,
        description="BigQuery Storage Read/Write API (gRPC) endpoint override, host:port "
        "(emulators): an insecure channel, no credentials.",
    )
    storage_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices("STORAGE_EMULATOR_HOST", "AIRCAST_STORAGE_ENDPOINT"),
        description="Cloud Storage endpoint override (emulators).",
    )
    region: str = Field("us-central1", description="Region of the functions and scheduler.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Level of the JSON logs."
    )

    # Forecasting
    target: str = Field(
        "pm2_5", description="Observation column to forecast (when AIRCAST_TARGETS is unset)."
    )
    targets: str | None = Field(
        None,
        description="Pollutant columns to forecast, comma-separated (e.g. "
        "pm2_5,pm10,ozone,nitrogen_dioxide): one model each, trained, gated and served "
        "apart; the first is the default the api answers. Unset: AIRCAST_TARGET alone.",
    )
    horizon: int = Field(24, ge=1, le=HORIZON_MAX_H, description="Forecast horizons 1..H hours.")
    model_name: str = Field("aircast", description="Name of the model under models/.")

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
        "run_status (default: its function's timeout, common/core/deploy.py).",
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

    # --- training ------------------------------------------------------------------------
    train_window_days: int = Field(
        1095,
        ge=7,
        le=TRAIN_WINDOW_MAX_DAYS,
        description="Train on observations of this many days up to as_of (raw observations "
        "are kept a little longer, see docs/data.md).",
    )
    train_max_rows: int = Field(
        500_000,
        ge=1_000,
        le=20_000_000,
        description="Row budget of the fit (issue times subsampled to fit it).",
    )
    train_holdout_days: int = Field(
        7, ge=1, le=365, description="Issue times of the last days held out for the gate."
    )
    train_backtest_folds: int = Field(
        2, ge=0, le=12, description="Earlier rolling-origin folds, each refit on a quarter budget."
    )
    train_threads: int = Field(2, ge=1, le=64, description="XGBoost threads.")
    future_weather: bool = Field(
        False,
        description="Use weather forecasts for the target hour (needs a source that "
        "provides them, e.g. open-meteo). Training uses, for each issue time, the newest "
        "forecast issued at or before it in weather_forecasts (the rule predict uses), "
        "missing where none was kept.",
    )
    train_weather: Literal["as-issued", "observed-oracle"] = Field(
        "as-issued",
        description="Training's target-hour weather when AIRCAST_FUTURE_WEATHER is on: "
        "forecasts as issued, or `observed-oracle`, the observed weather (a study of a "
        "perfect forecast, which no deployment has: the model then meets forecast error "
        "only in production). The model card says which.",
    )
    cams_input: bool = Field(
        True,
        description="Give the model the CAMS forecast of its target (air_quality_forecasts, "
        "as issued) once enough has accrued: issued on most days since at least 28 days "
        "before the holdout (see docs/architecture.md); the gate then decides on the "
        "holdout as for any candidate.",
    )
    gate_margin: float = Field(
        0.05, ge=0, lt=1, description="Required MAE improvement over seasonal naive (share)."
    )
    gate_tolerance: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="MAE loss against production (share of its MAE) that the lower end of "
        "the bootstrap interval must exceed to reject a candidate; between that and a "
        "significant gain, production is kept (no evidence of a difference, or a loss "
        "within this tolerance).",
    )
    gate_bootstrap_samples: int = Field(
        1000,
        ge=100,
        le=100_000,
        description="Block-bootstrap resamples (over issue days) of the paired holdout "
        "errors against production.",
    )
    gate_confidence: float = Field(
        0.95, gt=0.5, lt=1, description="Confidence of the gate's bootstrap interval."
    )
    tune_budget_seconds: float = Field(
        900.0,
        ge=1,
        le=3600,
        description="Wall-time budget of a parameter search (no trial starts after it).",
    )
    tune_max_trials: int = Field(
        20, ge=1, le=500, description="Most parameter sets one search tries."
    )

    # --- predict and serving -------------------------------------------------------------
    predict_shards: int = Field(
        1,
        ge=1,
        le=256,
        description="Predict shards: N scheduler jobs each forecast the locations whose id "
        "hashes to their shard, and the api reads the N snapshot parts (see docs/scale.md).",
    )
    interval_adapt_eta: float = Field(
        0.005,
        ge=0,
        le=0.1,
        description="Step of the adaptive interval offsets: each verified hour moves a "
        "horizon's p10 / p90 outward by this x (its miss share - 10%) in log units; 0 serves "
        "each version's calibrated interval unchanged.",
    )
    predict_batch_locations: int = Field(
        10_000,
        ge=1,
        le=100_000,
        description="Locations one predict invocation reads, featurises and writes at a "
        "time: bounds its memory whatever the shard's size.",
    )

    # --- api -----------------------------------------------------------------------------
    api_refresh_seconds: float = Field(
        5.0, ge=0, le=3600, description="How often the api re-checks the serving snapshot."
    )
    api_parts_in_memory: int = Field(
        16,
        ge=1,
        le=256,
        description="Snapshot parts (predict shards) one api instance keeps parsed per "
        "target; more are re-read when asked for. About 70 MB per 10,000-location part.",
    )
    api_stale_after_hours: float = Field(
        3.0, gt=0, le=24 * 31, description="Snapshot age at which /health says degraded."
    )
    api_read_only: bool = Field(
        False,
        description="Serve only the dashboard and the read routes (GET); POST /v1/predict "
        "answers 403. Terraform sets it on a public api (api_public).",
    )
    aqi_scheme: Literal["us-epa", "cn-hj633"] = Field(
        "us-epa",
        description="Air-quality index the api and dashboard show: us-epa (EPA 2024) or "
        "cn-hj633 (China HJ 633-2012); see docs/aqi.md.",
    )

    @field_validator("dataset", "model_name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError("must be letters, digits and underscores, not starting with a digit")
        return value

    @field_validator("project")
    @classmethod
    def _project(cls, value: str | None) -> str | None:
        if value is not None and not PROJECT_ID.match(value):
            raise ValueError("is not a valid Google Cloud project id")
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None and not BUCKET_NAME.match(value):
            raise ValueError("is not a valid bucket name")
        return value

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

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if value not in VARIABLES:
            raise ValueError(f"must be one of the observation variables: {', '.join(VARIABLES)}")
        return value

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise ValueError("must name at least one pollutant column")
        unknown = [name for name in names if name not in POLLUTANTS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not a pollutant column; choose from {', '.join(POLLUTANTS)}"
            )
        if len(set(names)) < len(names):
            raise ValueError("names a column more than once")
        return ",".join(names)

    @model_validator(mode="after")
    def _gcp_needs_project_and_bucket(self) -> Settings:
        if self.backend == "gcp":
            missing = [
                name
                for name, value in (
                    ("GOOGLE_CLOUD_PROJECT", self.project),
                    ("AIRCAST_BUCKET", self.bucket),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"AIRCAST_BACKEND=gcp needs {' and '.join(missing)}")
        return self

    @property
    def forecast_targets(self) -> tuple[str, ...]:
        """The columns this deployment forecasts, the default first: AIRCAST_TARGETS, else
        AIRCAST_TARGET alone. Every job and the api read the list from here."""
        return tuple(self.targets.split(",")) if self.targets else (self.target,)

    @property
    def default_target(self) -> str:
        """The target served when a request names none; its model and snapshot keep the
        names a single-target deployment has always used."""
        return self.forecast_targets[0]

    def target_of(self, asked: str | None) -> str:
        """The target a request names (None: the default); one not forecast here is a 400
        naming `target`."""
        if asked is None:
            return self.default_target
        if asked not in self.forecast_targets:
            raise BadRequest(
                f"target: {asked!r} is not forecast here; choose from "
                f"{', '.join(self.forecast_targets)}",
                field="target",
            )
        return asked

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def artifacts_path(self) -> Path:
        return self.home / "artifacts"


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        return str(info.validation_alias.choices[0])
    return f"AIRCAST_{field.upper()}" if field else "configuration"


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raise ConfigError naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            value = err.get("input")
            shown = "" if isinstance(value, dict) or value is None else f" (got {value!r})"
            problems.append(f"{_env_name(field)}: {err['msg']}{shown}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@functools.cache
def get_settings() -> Settings:
    """Process-wide settings, read once. Tests call `get_settings.cache_clear()`."""
    return load_settings()
