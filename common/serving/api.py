"""The prediction api: Flask routes answered from the serving snapshot held in memory.

Predict publishes `serving/latest.json` (or one part per shard, see `Parts`); the api keeps
the parsed snapshot in memory and re-checks each object's generation at most every
`AIRCAST_API_REFRESH_SECONDS`, so a lookup costs a dictionary access (and, once per
snapshot, the JSON encoding of its answer). It never queries the warehouse. The module
imports only flask, pydantic and the light parts of `common`; the model code loads on the
first `POST /v1/predict`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from typing import cast

import flask
import werkzeug.routing
from pydantic import ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as WerkzeugNotFound
from werkzeug.wrappers import Request, Response

from common.core.aqi import get_scheme
from common.core.config import Settings
from common.core.errors import (
    AircastError,
    BadRequest,
    Conflict,
    Forbidden,
    Unavailable,
    validation_message,
)
from common.core.logs import get_logger
from common.forecasting.snapshot import intervals_key
from common.monitoring import STATUS_KEY
from common.runtime.body import parse_json, read_body, truncate
from common.runtime.statuses import http_status
from common.serving import places
from common.serving.cache import Budget, OffsetsCache, Parts, SnapshotCache
from common.serving.indices import scheme_model
from common.serving.models import (
    CurrentModel,
    LocationsQuery,
    LocationsResponse,
    MetricsResponse,
    OnlinePredictRequest,
    PipelineStatus,
    Place,
    PlacesQuery,
    PlacesResponse,
)
from common.serving.openapi import openapi, query_parameters
from common.serving.query import check_query, forecast_query, validated
from common.serving.render import (
    HTML,
    JSON,
    countries_response,
    encode,
    entry,
    forecasts_of,
    health_of,
    hours_of,
    json_response,
    location_forecast,
    merge_accuracy,
    nearest,
    place_of,
    require_location,
)
from common.storage import ArtifactStore, ObjectMissing, StoreError

log = get_logger("api")
FORECAST_PREFIX = "/v1/forecasts/"
DASHBOARD_PARAMS = frozenset({"place", "target"})  # the page's URL: a place and a pollutant
SNAPSHOT_ROUTES = frozenset({"/v1/locations", "/v1/forecasts", "/v1/metrics"})


class Api:
    """The routes, bound to one store and settings (one per process; tests make their own)."""

    def __init__(self, settings: Settings, store: ArtifactStore) -> None:
        self.settings = settings
        self.store = store
        # One set of snapshot parts per target (AIRCAST_TARGETS), made on first use, so an
        # instance asked for one target holds that target's parts alone.
        self._by_target: dict[str, Parts] = {}
        self._targets_lock = threading.Lock()
        self.budget = Budget(SnapshotCache.MAX_ENCODED_BYTES)  # answers kept, every target's
        self.parts = self.target_parts(settings.default_target)
        self.offsets = OffsetsCache(store, settings.api_refresh_seconds)
        self.scheme = get_scheme(settings.aqi_scheme)
        self._openapi: bytes | None = None
        self.document = openapi(targets=settings.forecast_targets, horizon=settings.horizon)
        self._params = query_parameters(self.document)
        self._dashboard: bytes | None = None
        # Exact paths -> (method, view); one prefix route for the per-location lookup. A dict
        # lookup instead of werkzeug's router: on this path every microsecond is throughput.
        self.routes: dict[
            str, tuple[str, Callable[[Request], bytes | tuple[bytes, str] | Response]]
        ] = {
            "/": ("GET", lambda r: (self.dashboard(), HTML)),
            "/health": ("GET", lambda r: self.health()),
            "/openapi.json": ("GET", lambda r: self.openapi()),
            "/v1/locations": ("GET", lambda r: self.locations(r.args)),
            "/v1/forecasts": ("GET", lambda r: self.forecasts(r.args)),
            "/v1/predict": ("POST", self.predict),
            "/v1/models/current": ("GET", lambda r: self.current_model(r.args)),
            "/v1/metrics": ("GET", lambda r: self.metrics(r.args)),
            "/v1/aqi": ("GET", lambda r: encode(scheme_model(self.scheme))),
            "/v1/places": ("GET", lambda r: self.places(r.args)),
            "/geo/countries.json": ("GET", self.geography),
        }

    def _route(self, request: Request) -> bytes | tuple[bytes, str] | Response:
        path, method = request.path, request.method
        if method == "HEAD":
            method = "GET"
        route = self.routes.get(path)
        if route is None and path.startswith(FORECAST_PREFIX) and len(path) > len(FORECAST_PREFIX):
            route = ("GET", lambda r: self.forecast(path[len(FORECAST_PREFIX) :], r.args))
        if route is None:
            raise WerkzeugNotFound()
        if method != route[0]:
            raise MethodNotAllowed(valid_methods=[route[0]])
        if request.query_string:  # unknown or repeated parameters are the caller's mistake
            template = "/v1/forecasts/{location_id}" if path.startswith(FORECAST_PREFIX) else path
            # the dashboard's shareable state is read by its own script
            extra = DASHBOARD_PARAMS if path == "/" else frozenset()
            check_query(request.args, template, self._params, extra)
        if method != "GET" and self.settings.api_read_only:
            raise Forbidden(
                f"method: this api is read-only (AIRCAST_API_READ_ONLY); {method} {path} is "
                "served by the private api only",
                field="method",
            )
        if not (path in SNAPSHOT_ROUTES or path.startswith(FORECAST_PREFIX)):
            return route[1](request)
        # Snapshot lookups: the same URL gets the same bytes until its part changes.
        # (the hot path parses no query string unless it may name a target)
        parts = self.parts_of(request.args) if b"target" in request.query_string else self.parts
        if path.startswith(FORECAST_PREFIX):
            serving = parts.of(path[len(FORECAST_PREFIX) :]).require()
        elif parts.shards == 1:
            serving = parts.part(0).require()
        else:  # a route over every part: built from the parts' own caches
            return route[1](request)
        view = route[1]
        return serving.for_url((path, request.query_string), lambda: cast(bytes, view(request)))

    def __call__(self, request: Request) -> Response:
        """Route one request; every error is JSON `{error, field?}`, never HTML, never a 500
        for anything the caller sent."""
        try:
            read_body(request, self.settings.max_request_bytes)  # 413 before any route reads it
            answer = self._route(request)
        except AircastError as exc:
            status = http_status(exc)
            if status == 500:  # ours (not the caller's, not a dependency's): worth a trace
                log.error("request failed", exc_info=exc)
            return json_response(exc.to_dict(), status)
        except HTTPException as exc:
            response = json_response({"error": exc.description or exc.name}, exc.code or 500)
            if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
                response.headers["Allow"] = ", ".join(exc.valid_methods)
            return response
        except Exception as exc:
            log.exception("request failed")
            return json_response({"error": f"internal error: {type(exc).__name__}"}, 500)
        if isinstance(answer, Response):
            return answer
        if isinstance(answer, tuple):
            return Response(answer[0], 200, mimetype=answer[1])
        return Response(answer, 200, mimetype=JSON)

    # --- helpers -------------------------------------------------------------------------
    def target_parts(self, target: str) -> Parts:
        """The snapshot parts of a configured target."""
        parts = self._by_target.get(target)
        if parts is None:
            with self._targets_lock:
                parts = self._by_target.get(target)
                if parts is None:
                    s = self.settings
                    parts = self._by_target[target] = Parts(
                        self.store,
                        s.api_refresh_seconds,
                        s.predict_shards,
                        s.api_parts_in_memory,
                        target,
                        s.default_target,
                        self.budget,
                    )
        return parts

    def parts_of(self, args: MultiDict[str, str]) -> Parts:
        """The parts of the request's `?target=` (default: the default target); a target
        not forecast here is a 400 naming `target`."""
        asked = args.get("target")
        if asked is None:
            return self.parts
        return self.target_parts(self.settings.target_of(asked))

    # --- routes --------------------------------------------------------------------------
    def health(self) -> bytes:
        return encode(health_of(self.settings, self.parts, self._pipeline))

    def locations(self, args: MultiDict[str, str]) -> bytes:
        query = validated(LocationsQuery, args)
        parts = self.parts_of(args)
        if query.lat is not None or query.lon is not None:
            if query.lat is None or query.lon is None:
                missing, given = ("lat", "lon") if query.lat is None else ("lon", "lat")
                raise BadRequest(f"{missing}: required with {given}", field=missing)
            near = nearest(parts, query.lat, query.lon, query.limit)
            return encode(LocationsResponse(locations=[entry(loc, d) for loc, d in near]))
        if parts.shards > 1:
            found = [loc for serving in parts.servings() for loc in serving.part.locations()]
            return encode(LocationsResponse(locations=[entry(loc) for loc in found]))
        serving = parts.part(0).require()
        part = serving.part
        return serving.answer(
            ("locations",),
            lambda: encode(LocationsResponse(locations=[entry(loc) for loc in part.locations()])),
        )

    def places(self, args: MultiDict[str, str]) -> bytes:
        """Places of the gazetteer by name, each with its nearest forecast location."""
        query = validated(PlacesQuery, args)
        parts = self.parts_of(args)
        out = []
        for place in places.search_places(query.q, query.limit):
            near = nearest(parts, place["latitude"], place["longitude"], 1)
            out.append(Place(**place, nearest=entry(*near[0]) if near else None))
        return encode(PlacesResponse(places=out, source=places.gazetteer_source()))

    def geography(self, request: Request) -> Response:
        return countries_response(request.headers.get("Accept-Encoding", ""))

    def forecast(self, location_id: str, args: MultiDict[str, str]) -> bytes:
        serving = self.parts_of(args).of(location_id).require()
        query = forecast_query(args)
        hours = hours_of(query, serving.head)
        require_location(serving, location_id)
        key = ("forecast", location_id, hours, query.observations)
        part = serving.part
        return serving.answer(
            key,
            lambda: encode(
                location_forecast(part, location_id, hours, query.observations, self.scheme)
            ),
        )

    def forecasts(self, args: MultiDict[str, str]) -> bytes:
        query = forecast_query(args)
        parts = self.parts_of(args)
        wanted = list(dict.fromkeys(args.getlist("location")))
        if parts.shards > 1 or len(wanted) > 8:  # arbitrary sets are not worth caching
            return encode(forecasts_of(parts, query, wanted, self.scheme))
        serving = parts.part(0).require()
        key = ("forecasts", tuple(wanted), hours_of(query, serving.head), query.observations)
        return serving.answer(key, lambda: encode(forecasts_of(parts, query, wanted, self.scheme)))

    def metrics(self, args: MultiDict[str, str]) -> bytes:
        servings = self.parts_of(args).servings()
        newest = max(servings, key=lambda serving: serving.head.issued_at).head
        accuracy = (
            newest.accuracy
            if len(servings) == 1
            else merge_accuracy([sv.head.accuracy for sv in servings])
        )
        return encode(  # not cached per snapshot: the monitor stores the status after it
            MetricsResponse(
                model_name=newest.model_name,
                model_version=newest.model_version,
                issued_at=newest.issued_at,
                accuracy=accuracy,
                pipeline=self._pipeline(),
            )
        )

    def _pipeline(self) -> PipelineStatus | None:
        """The health conditions the monitor stored; None when none are, or when they cannot
        be read (/health must answer whatever the bucket holds; the log says why)."""
        try:
            return PipelineStatus.model_validate_json(self.store.get(STATUS_KEY))
        except ObjectMissing:
            return None
        except Exception:
            log.exception("could not read the stored health status %s", STATUS_KEY)
            return None

    def current_model(self, args: MultiDict[str, str]) -> bytes:
        from common.forecasting.registry import Registry

        s = self.settings
        registry = Registry.of_target(self.store, s, s.target_of(args.get("target")))
        try:
            pointer, _ = registry.production()
            if pointer is None:
                raise Conflict(f"no production model for {registry.name!r} yet")
            metadata = registry.metadata(pointer.version)
        except ObjectMissing:
            raise Conflict(f"no production model for {registry.name!r} yet") from None
        except StoreError as exc:  # unreadable pointer or metadata, or the store itself
            raise Unavailable(f"production model of {registry.name!r}: {exc}") from None
        return encode(
            CurrentModel(
                model_name=registry.name,
                version=pointer.version,
                promoted_at=pointer.promoted_at,
                metadata=metadata,
            )
        )

    def predict(self, request: Request) -> bytes:
        raw = read_body(request, self.settings.max_request_bytes)
        body = parse_json(raw) if raw.strip() else None  # bounded depth, no NUL, no 100 kB
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object", field="body")
        try:
            params = OnlinePredictRequest.model_validate(body, strict=True)
        except ValidationError as exc:
            name, message = validation_message(exc)
            raise BadRequest(truncate(message), field=truncate(name, 100)) from None
        from common.serving.online import (  # heavy code loads on first use
            place_weights_of,
            predict_online,
        )

        target = self.settings.target_of(params.target)  # 400 naming `target` if not here
        adaptation = self.offsets.get(intervals_key(target, self.settings.default_target))
        if adaptation is not None and self.settings.interval_adapt_eta == 0:
            adaptation = replace(adaptation, offsets=None)  # the weights still serve
        place = place_of(self.parts, params.location_id)
        own = place_weights_of(self.target_parts(target), params.location_id)
        return encode(predict_online(params, self.settings, self.store, place, adaptation, own))

    def openapi(self) -> bytes:
        if self._openapi is None:
            self._openapi = json.dumps(self.document).encode()
        return self._openapi

    def dashboard(self) -> bytes:
        if self._dashboard is None:
            page = resources.files("common.serving").joinpath("dashboard.html")
            self._dashboard = page.read_bytes()
        return self._dashboard


def create_app(settings: Settings, store: ArtifactStore) -> flask.Flask:
    """A Flask app that hands every path to `Api`, as functions-framework does when deployed."""
    app = flask.Flask("aircast-api")
    api = Api(settings, store)
    app.extensions["aircast_api"] = api
    # Every method, TRACE included, reaches `Api` (which answers 405 with `Allow`), as
    # functions-framework routes them: rules without a method list.
    app.url_map.add(werkzeug.routing.Rule("/", defaults={"path": ""}, endpoint="root"))
    app.url_map.add(werkzeug.routing.Rule("/<path:path>", endpoint="root"))
    app.view_functions["root"] = lambda path="": api(flask.request)
    return app
