"""The api's request and response models.

One definition each: the routes validate and serialise with these models, and
`/openapi.json` is built from their JSON schemas (`common.serving.openapi`), so the
contract cannot drift from the code. Light on purpose (pydantic only) for the api's cold
start.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from common.core.schema import LOCATION_ID_PATTERN, VARIABLES, WEATHER
from common.core.timeutil import UTCDateTime
from common.forecasting.snapshot import Accuracy, LocationInfo
from common.forecasting.versions import ModelMetadata
from common.monitoring.health import PipelineStatus

REF = "#/components/schemas/{model}"
LOCATION_ID = {"type": "string", "pattern": LOCATION_ID_PATTERN}
MAX_HORIZON = 168  # the largest AIRCAST_HORIZON allowed by common.core.config


class ErrorResponse(BaseModel):
    error: str = Field(description="What went wrong, in one sentence.")
    field: str | None = Field(None, description="The request field at fault, if any.")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    reason: str | None = Field(None, description="Why degraded.")
    model_name: str
    model_version: str | None = None
    issued_at: dt.datetime | None = None
    snapshot_generated_at: dt.datetime | None = None
    snapshot_age_seconds: float | None = Field(None, description="Now minus issued_at.")
    locations: int = 0
    stale_locations: int = Field(
        0, description="Locations served their previous forecast: the last run skipped them."
    )
    pipeline: PipelineStatus | None = Field(
        None, description="The stored health conditions; null before the monitor stored any."
    )
    targets: list[str] = Field(
        default_factory=list,
        description="The variables forecast here (AIRCAST_TARGETS), the default first: the "
        "values of the lookups' `target` parameter. The rest of this answer is the default's.",
    )


class LocationEntry(LocationInfo):
    distance_km: float | None = Field(
        None, description="Great-circle distance from ?lat=&lon= (null without them)."
    )


class LocationsResponse(BaseModel):
    locations: list[LocationEntry] = Field(
        description="Every location; with ?lat=&lon=, the `limit` nearest forecast "
        "locations, nearest first."
    )


class LocationsQuery(BaseModel):
    """Query parameters of /v1/locations: a point (lat and lon, both or neither) asks for
    the nearest forecast locations."""

    model_config = ConfigDict(extra="ignore")

    lat: float | None = Field(None, ge=-90, le=90, description="Latitude, WGS 84 degrees.")
    lon: float | None = Field(None, ge=-180, le=180, description="Longitude, WGS 84 degrees.")
    limit: int = Field(5, ge=1, le=100, description="How many nearest locations (with lat, lon).")


class PlacesQuery(BaseModel):
    """Query parameters of /v1/places."""

    model_config = ConfigDict(extra="ignore")

    q: str = Field(min_length=2, max_length=100, description="A place name, e.g. Berlin.")
    limit: int = Field(5, ge=1, le=20, description="How many places.")


class Place(BaseModel):
    name: str
    country: str
    country_code: str = Field(description="ISO 3166-1 alpha-2.")
    latitude: float
    longitude: float
    nearest: LocationEntry | None = Field(
        None, description="The nearest forecast location, with its distance (null if none)."
    )


class PlacesResponse(BaseModel):
    places: list[Place] = Field(description="Matching places, best match first.")
    source: str = Field(description="The gazetteer and its licence.")


class AirNow(BaseModel):
    """The latest observed hour of the target and its index: the air quality now."""

    ts: dt.datetime = Field(description="The observed hour (UTC).")
    value: float = Field(description="The observed concentration that hour.")
    aqi: int | None = Field(
        None,
        description="Index of that hour with the scheme's averaging (US EPA PM: the 12-hour "
        "NowCast; O3: the 8-hour mean); null where undefined.",
    )
    category: str | None = None
    color: str | None = None
    statement: str | None = None
    averaging: str = Field(description="What the index is of, e.g. '12-hour NowCast'.")


class ForecastPoint(BaseModel):
    target_ts: dt.datetime
    horizon_h: int = Field(ge=1)
    yhat: float = Field(description="Median forecast (p50).")
    yhat_lower: float = Field(description="Lower bound of the interval (p10).")
    yhat_upper: float = Field(description="Upper bound of the interval (p90).")
    aqi: int | None = Field(
        None, description="Air-quality index of the hour (AIRCAST_AQI_SCHEME); null if undefined."
    )
    category: str | None = Field(None, description="The scheme's category name for `aqi`.")
    aqi_lower: int | None = Field(None, description="Index of the p10 value (the band's low end).")
    aqi_upper: int | None = Field(None, description="Index of the p90 value (the band's high end).")
    category_lower: str | None = Field(None, description="Category of the band's low end.")
    category_upper: str | None = Field(None, description="Category of the band's high end.")


class AqiCategory(BaseModel):
    low: int
    high: int
    name: str
    color: str = Field(description="The agency's colour, #RRGGBB.")
    statement: str = Field(description="The scheme's cautionary statement for the category.")


class AqiScheme(BaseModel):
    """The index the api reports (AIRCAST_AQI_SCHEME): its categories, colours, statements."""

    scheme: str
    title: str
    categories: list[AqiCategory]


class WorstHour(BaseModel):
    """The highest index in the next 24 forecast hours, with what the scheme advises."""

    scheme: str
    target_ts: dt.datetime
    aqi: int
    category: str
    color: str
    statement: str


class RecentValues(BaseModel):
    start: dt.datetime = Field(description="Time of values[0]; values are hourly.")
    values: list[float | None]


class PastForecasts(BaseModel):
    horizon_h: int = Field(description="How far ahead these forecasts were made.")
    start: dt.datetime = Field(description="Time of values[0]; values are hourly.")
    values: list[float | None] = Field(description="p50 forecast for each hour (null: none).")


class LocationForecastResponse(BaseModel):
    location_id: str
    model_name: str
    model_version: str
    target: str
    unit: str
    issued_at: dt.datetime = Field(description="When this location's forecast was issued.")
    stale: bool = Field(
        False,
        description="True when the last predict run could not forecast this location and its "
        "previous forecast (issued_at, earlier than the snapshot's) is served while it covers "
        "future hours.",
    )
    points: list[ForecastPoint]
    observations: RecentValues | None = Field(
        None, description="The target's recent hourly values (with ?observations=true)."
    )
    hindcast: PastForecasts | None = Field(
        None,
        description="What was forecast for the recent hours, beside `observations` "
        "(with ?observations=true).",
    )
    worst: WorstHour | None = Field(
        None, description="The day's worst hour by air-quality index (null if undefined)."
    )
    now: AirNow | None = Field(
        None,
        description="The latest observed hour up to issued_at and its index (null when the "
        "snapshot holds no observation of this location).",
    )


class ForecastsResponse(BaseModel):
    forecasts: list[LocationForecastResponse]
    skipped: dict[str, str] = Field(
        default_factory=dict,
        description="Known locations that the last predict run could not forecast, by reason.",
    )


class CurrentModel(BaseModel):
    model_name: str
    version: str
    promoted_at: dt.datetime | None = None
    metadata: ModelMetadata = Field(description="models/<name>/<version>/metadata.json")


class MetricsResponse(BaseModel):
    model_name: str
    model_version: str
    issued_at: dt.datetime
    accuracy: Accuracy | None = Field(
        None,
        description="Recent accuracy by horizon and location over the whole network, as "
        "predict computed it (once a run, in shard 0 when sharded): window_end is that run's "
        "issue time, older than issued_at when shard 0's last run failed; null before any "
        "is known.",
    )
    pipeline: PipelineStatus | None = Field(
        None, description="The stored health conditions; null before the monitor stored any."
    )


def _variable_fields(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Optional float fields bounded by each variable's physical range (common.core.schema)."""
    fields: dict[str, Any] = {}
    for name in names:
        v = VARIABLES[name]
        fields[name] = (
            float | None,
            Field(None, ge=v.low, le=v.high, description=f"{v.description} [{v.unit}]"),
        )
    return fields


_STRICT = ConfigDict(extra="forbid")

Observation = create_model(
    "Observation",
    __config__=_STRICT,
    __doc__="One observed hour at the location (columns as in common.core.schema.VARIABLES).",
    ts=(UTCDateTime, Field(description="Start of the observed hour, UTC (ISO-8601).")),
    **_variable_fields(list(VARIABLES)),
)

WeatherForecast = create_model(
    "WeatherForecast",
    __config__=_STRICT,
    __doc__="Forecast weather for a future hour (the weather columns of common.core.schema).",
    ts=(UTCDateTime, Field(description="Forecast hour, UTC (ISO-8601).")),
    **_variable_fields(WEATHER),
)


class OnlinePredictRequest(BaseModel):
    """An online forecast from observations the caller sends."""

    model_config = _STRICT

    location_id: str | None = Field(
        None,
        pattern=LOCATION_ID_PATTERN,
        description="Optional: a known location (its metadata is used).",
    )
    observations: list[Observation] = Field(
        min_length=1, max_length=24 * 31, description="Recent hourly observations, any order."
    )
    weather_forecasts: list[WeatherForecast] | None = Field(
        None, max_length=MAX_HORIZON * 2, description="Weather forecasts for the coming hours."
    )
    hours: int | None = Field(
        None, ge=1, le=MAX_HORIZON, description="Horizons 1..hours (default: the model's)."
    )
    target: str | None = Field(
        None,
        description="The variable to forecast, one of AIRCAST_TARGETS (default: the first).",
    )


class ForecastQuery(BaseModel):
    """Query parameters of the forecast lookups."""

    model_config = ConfigDict(extra="ignore")

    hours: int | None = Field(None, ge=1, le=MAX_HORIZON)
    observations: bool = False
