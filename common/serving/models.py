"""The api's request and response models, and the OpenAPI document generated from them.

One definition each: the routes validate and serialise with these models, and
`/openapi.json` is built from their JSON schemas, so the contract cannot drift from the
code. Light on purpose (pydantic only) for the api's cold start.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

from common.core.schema import LOCATION_ID_PATTERN, POLLUTANTS, VARIABLES, WEATHER
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
        None, description="Recent accuracy by horizon and location; null before any is known."
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


SCHEMA_MODELS: tuple[type[BaseModel], ...] = (
    ErrorResponse,
    Health,
    LocationsResponse,
    LocationForecastResponse,
    ForecastsResponse,
    PlacesResponse,
    CurrentModel,
    MetricsResponse,
    AqiScheme,
)


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request: the field at fault is named",
        403: "Not served here: the api is read-only (AIRCAST_API_READ_ONLY)",
        404: "Unknown location or no such resource",
        409: "Not ready: no serving snapshot or no production model yet",
        503: "The artifact store could not be read",
    }
    return {str(c): _json(ErrorResponse, text[c]) for c in codes}


def _query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
        **extra,
    }


def _properties(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """A query model's fields as OpenAPI parameter schemas (null dropped: an absent
    parameter is how a query says "none")."""
    out = {}
    for name, spec in model.model_json_schema()["properties"].items():
        spec = dict(spec)
        spec.pop("title", None)
        options = [o for o in spec.pop("anyOf", []) if o.get("type") != "null"]
        if options:
            spec.update(options[0])
        if spec.get("default") is None:
            spec.pop("default", None)
        out[name] = spec
    return out


def _with_maximum(schema: dict[str, Any], maximum: int) -> dict[str, Any]:
    """`schema` (possibly an anyOf with null) with its integer's maximum set."""
    if "anyOf" in schema:
        return {
            **schema,
            "anyOf": [_with_maximum(o, maximum) if o.get("type") == "integer" else o
                      for o in schema["anyOf"]],
        }  # fmt: skip
    return {**schema, "maximum": maximum} if schema.get("type") == "integer" else schema


def _near_and_limit() -> list[dict[str, Any]]:
    """/v1/locations' parameters: `lat` and `lon` as one object parameter serialised as
    `?lat=..&lon=..` (form, exploded), so the document says they go together, and `limit`."""
    props = _properties(LocationsQuery)
    limit = props.pop("limit")
    point = {
        name: {k: v for k, v in spec.items() if k != "description"} for name, spec in props.items()
    }
    near = _query(
        "near",
        {
            "type": "object",
            "properties": point,
            "required": list(point),
            "additionalProperties": False,
        },
        "A point, `?lat=..&lon=..` (WGS 84 degrees, both or neither): the nearest forecast "
        "locations to it.",
        style="form",
        explode=True,
    )
    return [near, _query("limit", limit, limit.pop("description"))]


def openapi(
    title: str = "aircast api",
    version: str = "1",
    targets: tuple[str, ...] | None = None,
    horizon: int | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document: paths here, every schema from the pydantic models. The
    configuration's choices are the document's: `target`'s enum is the forecast targets
    (`targets`, else every pollutant), `hours`' maximum the horizon (`horizon`)."""
    _, top = models_json_schema([(m, "serialization") for m in SCHEMA_MODELS], ref_template=REF)
    # Request bodies are validated, not serialised: use the validation schema for them.
    _, inputs = models_json_schema([(OnlinePredictRequest, "validation")], ref_template=REF)
    schemas = {**top.get("$defs", {}), **inputs.get("$defs", {})}
    body = schemas["OnlinePredictRequest"] = dict(schemas["OnlinePredictRequest"])
    body["properties"] = dict(body["properties"])
    if targets:
        body["properties"]["target"] = {
            "anyOf": [{"type": "string", "enum": list(targets)}, {"type": "null"}],
            "default": None,
            "description": body["properties"]["target"].get("description", ""),
        }
    if horizon is not None:
        body["properties"]["hours"] = _with_maximum(body["properties"]["hours"], horizon)
    hours_schema = dict(ForecastQuery.model_json_schema()["properties"]["hours"])
    if horizon is not None:
        hours_schema = _with_maximum(hours_schema, horizon)
    hours = _query(
        "hours",
        hours_schema,
        "Horizons 1..hours (at most the snapshot's horizon; default all).",
    )
    observations = _query(
        "observations", {"type": "boolean"}, "Include the target's recent hourly values."
    )
    target = _query(
        "target",
        {"type": "string", "enum": list(targets or POLLUTANTS)},
        "The forecast variable, one of the deployment's AIRCAST_TARGETS (/health lists "
        "them; default: the first); another is a 400.",
    )
    lookup_errors = _errors(400, 404, 409, 503)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Air-quality forecasts served from the latest predict run.",
        },
        "paths": {
            "/health": {
                "get": {
                    "summary": "ok or degraded, with the model version and snapshot age",
                    "responses": {"200": _json(Health, "Health")},
                }
            },
            "/v1/locations": {
                "get": {
                    "summary": "The forecast locations; with lat and lon, the nearest ones",
                    "parameters": [target, *_near_and_limit()],
                    "responses": {
                        "200": _json(LocationsResponse, "Locations"),
                        **_errors(400, 409, 503),
                    },
                }
            },
            "/v1/places": {
                "get": {
                    "summary": "Places (cities) by name, each with its nearest forecast location",
                    "parameters": [
                        {**_query(name, spec, spec.pop("description")), "required": name == "q"}
                        for name, spec in _properties(PlacesQuery).items()
                    ]
                    + [target],
                    "responses": {
                        "200": _json(PlacesResponse, "Places"),
                        **_errors(400, 409, 503),
                    },
                }
            },
            "/v1/forecasts": {
                "get": {
                    "summary": "Latest forecasts for several locations (default: all)",
                    "parameters": [
                        _query(
                            "location",
                            {"type": "array", "items": LOCATION_ID},
                            "Location ids; repeat the parameter for several.",
                            style="form",
                            explode=True,
                        ),
                        hours,
                        observations,
                        target,
                    ],
                    "responses": {"200": _json(ForecastsResponse, "Forecasts"), **lookup_errors},
                }
            },
            "/v1/forecasts/{location_id}": {
                "get": {
                    "summary": "Latest forecast for one location",
                    "parameters": [
                        {
                            "name": "location_id",
                            "in": "path",
                            "required": True,
                            "schema": LOCATION_ID,
                        },
                        hours,
                        observations,
                        target,
                    ],
                    "responses": {
                        "200": _json(LocationForecastResponse, "Forecast"),
                        **lookup_errors,
                    },
                }
            },
            "/v1/predict": {
                "post": {
                    "summary": "Online forecast from observations the caller sends",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="OnlinePredictRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": _json(LocationForecastResponse, "Forecast"),
                        **_errors(400, 403, 404, 409, 503),
                    },
                }
            },
            "/v1/models/current": {
                "get": {
                    "summary": "The production model's metadata and metrics",
                    "parameters": [target],
                    "responses": {"200": _json(CurrentModel, "Model"), **_errors(400, 409, 503)},
                }
            },
            "/v1/aqi": {
                "get": {
                    "summary": "The air-quality index scheme: categories, colours, statements",
                    "responses": {"200": _json(AqiScheme, "AQI scheme")},
                }
            },
            "/v1/metrics": {
                "get": {
                    "summary": "Recent accuracy by horizon (computed by predict)",
                    "parameters": [target],
                    "responses": {
                        "200": _json(MetricsResponse, "Metrics"),
                        **_errors(400, 409, 503),
                    },
                }
            },
        },
        "components": {"schemas": schemas},
    }


def query_parameters(document: dict[str, Any]) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Per path of `document`, the query parameters its GET takes and those of them that
    may repeat (arrays): what the api accepts, read from what it documents."""
    out = {}
    for path, methods in document["paths"].items():
        params = [p for p in methods.get("get", {}).get("parameters", []) if p["in"] == "query"]
        names = frozenset(
            name
            for p in params
            for name in (
                p["schema"]["properties"] if p["schema"].get("type") == "object" else [p["name"]]
            )
        )
        arrays = frozenset(p["name"] for p in params if p["schema"].get("type") == "array")
        out[path] = (names, arrays)
    return out
