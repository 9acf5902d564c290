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
    ValidationError,
    field_validator,
    model_validator,
)

from common.core.config_ingest import IngestSettings
from common.core.config_section import Section
from common.core.config_serving import ServingSettings
from common.core.config_training import TrainingSettings
from common.core.errors import AircastError, BadRequest
from common.core.schema import POLLUTANTS, VARIABLES

HORIZON_MAX_H = 168  # the longest horizon a deployment may configure (one week)

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


class ConfigError(AircastError):
    """A setting is missing or invalid (500: the deployment's to fix); the message names the
    environment variable."""


class PlatformSettings(Section):
    """Where it runs (backend, project, stores, endpoints, logs) and what it forecasts."""

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
    def _gcp_needs_project_and_bucket(self) -> PlatformSettings:
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


class Settings(ServingSettings, TrainingSettings, IngestSettings, PlatformSettings):
    """All aircast settings. Field `x` is read from `AIRCAST_X` unless an alias says otherwise.

    One object, declared by group: platform and forecasting here, the others in
    `config_ingest`, `config_training` and `config_serving`. pydantic orders the fields of
    the groups by the bases from last to first, so they keep the order of
    docs/configuration.md: platform, forecasting, ingest, training, predict and api.
    """

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
