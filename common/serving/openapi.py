"""The api's OpenAPI 3.1 document, generated from its models (`common.serving.models`):
the paths are written here, every schema comes from a pydantic model, and the api reads
back from the document which query parameters each path accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from common.core.schema import POLLUTANTS
from common.serving.models import (
    LOCATION_ID,
    REF,
    AqiScheme,
    CurrentModel,
    ErrorResponse,
    ForecastQuery,
    ForecastsResponse,
    Health,
    LocationForecastResponse,
    LocationsQuery,
    LocationsResponse,
    MetricsResponse,
    OnlinePredictRequest,
    PlacesQuery,
    PlacesResponse,
)

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
    target = _query(
        "target",
        {"type": "string", "enum": list(targets or POLLUTANTS)},
        "The forecast variable, one of the deployment's AIRCAST_TARGETS (/health lists "
        "them; default: the first); another is a 400.",
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Air-quality forecasts served from the latest predict run.",
        },
        "paths": {
            **_listing_paths(target),
            **_forecast_paths(target, horizon),
            **_model_paths(target),
        },
        "components": {"schemas": _schemas(targets, horizon)},
    }


def _schemas(targets: tuple[str, ...] | None, horizon: int | None) -> dict[str, Any]:
    """Every model's JSON schema by name; the online request's `target` and `hours` bounded
    by the configuration."""
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
    return schemas


def _listing_paths(target: dict[str, Any]) -> dict[str, Any]:
    """/health, the locations and the places."""
    return {
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
                "responses": {"200": _json(PlacesResponse, "Places"), **_errors(400, 409, 503)},
            }
        },
    }


def _forecast_paths(target: dict[str, Any], horizon: int | None) -> dict[str, Any]:
    """The forecast lookups (several locations, one) and the online forecast."""
    hours_schema = dict(ForecastQuery.model_json_schema()["properties"]["hours"])
    if horizon is not None:
        hours_schema = _with_maximum(hours_schema, horizon)
    hours = _query(
        "hours", hours_schema, "Horizons 1..hours (at most the snapshot's horizon; default all)."
    )
    observations = _query(
        "observations", {"type": "boolean"}, "Include the target's recent hourly values."
    )
    lookup_errors = _errors(400, 404, 409, 503)
    locations = _query(
        "location",
        {"type": "array", "items": LOCATION_ID},
        "Location ids; repeat the parameter for several.",
        style="form",
        explode=True,
    )
    location_id = {"name": "location_id", "in": "path", "required": True, "schema": LOCATION_ID}
    body = {"schema": {"$ref": REF.format(model="OnlinePredictRequest")}}
    return {
        "/v1/forecasts": {
            "get": {
                "summary": "Latest forecasts for several locations (default: all)",
                "parameters": [locations, hours, observations, target],
                "responses": {"200": _json(ForecastsResponse, "Forecasts"), **lookup_errors},
            }
        },
        "/v1/forecasts/{location_id}": {
            "get": {
                "summary": "Latest forecast for one location",
                "parameters": [location_id, hours, observations, target],
                "responses": {
                    "200": _json(LocationForecastResponse, "Forecast"),
                    **lookup_errors,
                },
            }
        },
        "/v1/predict": {
            "post": {
                "summary": "Online forecast from observations the caller sends",
                "requestBody": {"required": True, "content": {"application/json": body}},
                "responses": {
                    "200": _json(LocationForecastResponse, "Forecast"),
                    **_errors(400, 403, 404, 409, 503),
                },
            }
        },
    }


def _model_paths(target: dict[str, Any]) -> dict[str, Any]:
    """The production model, the index scheme and the recent accuracy."""
    return {
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
                "responses": {"200": _json(MetricsResponse, "Metrics"), **_errors(400, 409, 503)},
            }
        },
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
