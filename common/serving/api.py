"""The prediction api: Flask routes answered from the serving snapshot held in memory.

Predict publishes `serving/latest.json` (or one part per shard, see `Parts`); the api keeps
the parsed snapshot in memory and re-checks each object's generation at most every
`AIRCAST_API_REFRESH_SECONDS`, so a lookup costs a dictionary access (and, once per
snapshot, the JSON encoding of its answer). It never queries the warehouse. The module
imports only flask, pydantic and the light parts of `common`; the model code loads on the
first `POST /v1/predict`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

import flask
from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as WerkzeugNotFound
from werkzeug.wrappers import Request, Response

from common.core.aqi import US_EPA, Scheme, get_scheme
from common.core.config import Settings
from common.core.errors import (
    AircastError,
    BadRequest,
    Conflict,
    NotFound,
    Unavailable,
    validation_message,
)
from common.core.logs import event, get_logger
from common.core.sharding import shard_of
from common.forecasting.snapshot import (
    SNAPSHOT_KEY,
    Accuracy,
    HorizonAccuracy,
    Snapshot,
    intervals_key,
    snapshot_key,
)
from common.monitoring import STATUS_KEY
from common.runtime.body import read_body
from common.serving.indices import forecast_points, scheme_model
from common.serving.models import (
    CurrentModel,
    ForecastQuery,
    ForecastsResponse,
    Health,
    LocationForecastResponse,
    LocationsResponse,
    MetricsResponse,
    PastForecasts,
    PipelineStatus,
    PredictRequest,
    RecentValues,
    openapi,
)
from common.storage import ArtifactStore, StoreError

if TYPE_CHECKING:
    from common.forecasting.adaptation import Offsets

log = get_logger("api")
JSON = "application/json"
HTML = "text/html"
FORECAST_PREFIX = "/v1/forecasts/"
SNAPSHOT_ROUTES = frozenset({"/v1/locations", "/v1/forecasts", "/v1/metrics"})


@dataclass
class Serving:
    """One loaded snapshot plus the answers already encoded from it."""

    snapshot: Snapshot
    generation: int
    by_id: dict[str, int]  # location_id -> index in snapshot.locations
    encoded: dict[tuple[Any, ...], bytes] = field(default_factory=dict)  # by meaning
    encoded_bytes: int = 0
    by_url: dict[tuple[str, bytes], bytes] = field(default_factory=dict)  # (path, query)
    url_bytes: int = 0


class SnapshotCache:
    """The serving snapshot in memory, re-read only when its generation changes.

    At most one thread checks the store at a time, and only after `refresh_seconds`; the
    others keep answering from the snapshot they have. A failed check keeps the old one.
    """

    # Bounds on the answers cached per snapshot (a caller choosing odd URLs cannot grow it).
    MAX_ENCODED_BYTES = 64 * 2**20
    MAX_URLS = 20_000

    def __init__(
        self, store: ArtifactStore, refresh_seconds: float, key: str = SNAPSHOT_KEY
    ) -> None:
        self.store = store
        self.key = key
        self.refresh_seconds = refresh_seconds
        self._serving: Serving | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def get(self) -> Serving | None:
        if time.monotonic() - self._checked >= self.refresh_seconds and self._lock.acquire(
            blocking=self._serving is None
        ):
            try:
                if time.monotonic() - self._checked >= self.refresh_seconds:
                    self._refresh()
            finally:
                self._lock.release()
        return self._serving

    def _refresh(self) -> None:
        try:
            generation = self.store.generation(self.key)
            if generation == 0:
                self._serving, self.last_error = None, None
            elif self._serving is None or generation != self._serving.generation:
                data, generation = self.store.get_with_generation(self.key)
                snapshot = Snapshot.model_validate_json(data)
                by_id = {loc.location_id: i for i, loc in enumerate(snapshot.locations)}
                self._serving = Serving(snapshot, generation, by_id)
                self.last_error = None
                event(
                    log,
                    "serving snapshot loaded",
                    key=self.key,
                    generation=generation,
                    run_id=snapshot.run_id,
                    locations=len(by_id),
                )
        except NotFound:
            self._serving, self.last_error = None, None
        except (StoreError, ValueError, OSError) as exc:  # keep serving what we have
            self.last_error = f"{type(exc).__name__}: {exc}"
            event(log, "serving snapshot check failed", logging.ERROR, error=self.last_error)
            if self._serving is None:
                self._checked = time.monotonic()
                raise Unavailable(f"serving snapshot unreadable: {self.last_error}") from exc
        self._checked = time.monotonic()

    def require(self) -> Serving:
        serving = self.get()
        if serving is None:
            raise Conflict(
                f"no forecasts yet: the serving snapshot {self.key} is absent (run predict)"
            )
        return serving


class OffsetsCache:
    """The interval offsets predict publishes for each target (`intervals_key`), held like
    the snapshot: re-checked by generation at most every `refresh_seconds` and re-read only
    when it changed, so an online prediction adds no store request of its own. A failed
    check keeps what is held; with nothing held it is a 503."""

    def __init__(self, store: ArtifactStore, refresh_seconds: float) -> None:
        self.store, self.refresh_seconds = store, refresh_seconds
        self._held: dict[str, tuple[float, int, Offsets | None]] = {}  # (checked, generation, it)
        self._lock = threading.Lock()

    def get(self, key: str) -> Offsets | None:
        """The offsets at `key`, or None before predict has published any."""
        held = self._held.get(key)
        if held is not None and time.monotonic() - held[0] < self.refresh_seconds:
            return held[2]
        with self._lock:
            held = self._held.get(key)
            try:
                generation = self.store.generation(key)
                if held is not None and generation == held[1]:
                    value = held[2]
                elif generation == 0:
                    value = None
                else:
                    from common.forecasting.adaptation import Offsets  # numpy: on first use

                    data, generation = self.store.get_with_generation(key)
                    value = Offsets.from_json(json.loads(data))
            except NotFound:
                generation, value = 0, None
            except (StoreError, ValueError, KeyError, OSError) as exc:
                if held is None:
                    raise Unavailable(f"interval offsets unreadable: {exc}") from exc
                event(log, "interval offsets check failed", logging.ERROR, error=str(exc))
                generation, value = held[1], held[2]
            self._held[key] = (time.monotonic(), generation, value)
            return value


class Parts:
    """The snapshot parts the api serves, one per predict shard (AIRCAST_PREDICT_SHARDS).

    A lookup loads only the part of its location (the shard is a hash of the id), so an
    instance never holds or parses the whole network to answer one location; at most
    `held` parts stay parsed (least recently used dropped), which bounds memory at any
    network size. Routes over every location (the list, all forecasts, metrics) visit each
    part in turn. Cloud Run spreads requests over instances regardless of location, so an
    instance that should answer from memory must hold every part: `held` (setting
    AIRCAST_API_PARTS_IN_MEMORY) and the api's memory are sized together (docs/scale.md).
    """

    def __init__(
        self,
        store: ArtifactStore,
        refresh_seconds: float,
        shards: int,
        held: int = 16,
        target: str | None = None,
        default_target: str | None = None,
    ) -> None:
        self.store, self.refresh_seconds, self.shards = store, refresh_seconds, shards
        self.held = held
        self.target, self.default_target = target, default_target  # whose snapshot
        self._held: OrderedDict[int, SnapshotCache] = OrderedDict()
        self._shard_by_id: dict[str, int] = {}
        self._lock = threading.Lock()

    def part(self, shard: int) -> SnapshotCache:
        cache = self._held.get(shard)
        if cache is not None and len(self._held) < self.held:
            return cache  # the hot path: no eviction is possible, so no order to keep
        with self._lock:
            cache = self._held.get(shard)
            if cache is None:
                key = snapshot_key(shard, self.shards, self.target, self.default_target)
                cache = self._held[shard] = SnapshotCache(self.store, self.refresh_seconds, key)
                while len(self._held) > max(self.held, 1):
                    self._held.popitem(last=False)
            else:
                self._held.move_to_end(shard)
            return cache

    MAX_REMEMBERED = 500_000  # ids whose shard is remembered (a caller cannot grow it more)

    def of(self, location_id: str) -> SnapshotCache:
        if self.shards == 1:
            return self.part(0)
        shard = self._shard_by_id.get(location_id)
        if shard is None:
            shard = shard_of(location_id, self.shards)
            if len(self._shard_by_id) < self.MAX_REMEMBERED:
                self._shard_by_id[location_id] = shard
        return self.part(shard)

    def each(self) -> Iterator[tuple[int, Serving | None, str | None]]:
        """(shard, its serving or None, the last refresh error) for every part."""
        for k in range(self.shards):
            cache = self.part(k)
            try:
                serving = cache.get()
            except Unavailable:
                serving = None
            yield k, serving, cache.last_error

    def servings(self) -> list[Serving]:
        """Every part that is served; a 409 when none is (no predict run yet)."""
        found = [serving for _, serving, _ in self.each() if serving is not None]
        if not found:
            whose = f" of {self.target}" if self.target else ""
            raise Conflict(f"no forecasts yet: the serving snapshot{whose} is absent (run predict)")
        return found


def _json_response(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status, mimetype=JSON)


def _encode(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_none=False).encode()


def _forecast(
    snapshot: Snapshot, location_id: str, hours: int, with_obs: bool, scheme: Scheme = US_EPA
) -> LocationForecastResponse:
    fc = snapshot.forecasts[location_id]
    history = snapshot.observations.get(location_id)
    points, worst = forecast_points(scheme, snapshot.target, fc, history, hours)
    recent = history if with_obs else None
    past = snapshot.hindcast.get(location_id) if with_obs else None
    return LocationForecastResponse(
        location_id=location_id,
        model_name=snapshot.model_name,
        model_version=fc.model_version,
        target=snapshot.target,
        unit=snapshot.unit,
        issued_at=fc.issued_at,
        points=points,
        observations=RecentValues(start=recent.start, values=recent.values) if recent else None,
        hindcast=PastForecasts(**past.model_dump()) if past else None,
        worst=worst,
    )


def _query(args: MultiDict[str, str]) -> ForecastQuery:
    try:
        return ForecastQuery.model_validate(
            {k: args.get(k) for k in ("hours", "observations") if k in args}
        )
    except ValidationError as exc:
        name, message = validation_message(exc)
        raise BadRequest(message, field=name) from None


def _hours(query: ForecastQuery, snapshot: Snapshot) -> int:
    if query.hours is None:
        return snapshot.horizon
    if query.hours > snapshot.horizon:
        raise BadRequest(
            f"hours: must be at most the forecast horizon, {snapshot.horizon}", field="hours"
        )
    return query.hours


def _location(serving: Serving, location_id: str, field: str = "location_id") -> None:
    snap = serving.snapshot
    if location_id not in serving.by_id and location_id not in snap.forecasts:
        raise NotFound(f"unknown location {location_id!r}", field=field)
    if location_id not in snap.forecasts:
        reason = next((s.reason for s in snap.skipped if s.location_id == location_id), None)
        raise NotFound(
            f"no forecast for {location_id!r} in the latest run"
            + (f": {reason}" if reason else ""),
            field=field,
        )


def _weighted(pairs: list[tuple[int, float]]) -> float:
    return sum(n * x for n, x in pairs) / max(sum(n for n, _ in pairs), 1)


def merge_accuracy(parts: list[Accuracy | None]) -> Accuracy | None:
    """One network's accuracy from the shards' parts: per horizon, the n-weighted means of
    MAE, coverage and persistence MAE and the root of the n-weighted mean squared error;
    per location, the union (each location is in one part)."""
    known = [a for a in parts if a is not None]
    if not known:
        return None
    by_h: dict[int, list[Any]] = {}
    for part in known:
        for h in part.by_horizon:
            by_h.setdefault(h.horizon_h, []).append(h)
    rows = []
    for horizon, group in sorted(by_h.items()):
        persisted = [(h.n, h.persistence_mae) for h in group if h.persistence_mae is not None]
        rows.append(
            HorizonAccuracy(
                horizon_h=horizon,
                n=sum(h.n for h in group),
                mae=round(_weighted([(h.n, h.mae) for h in group]), 3),
                rmse=round(_weighted([(h.n, h.rmse**2) for h in group]) ** 0.5, 3),
                coverage=round(_weighted([(h.n, h.coverage) for h in group]), 3),
                persistence_mae=round(_weighted(persisted), 3) if persisted else None,
            )
        )
    return Accuracy(
        window_start=min(a.window_start for a in known),
        window_end=max(a.window_end for a in known),
        by_horizon=rows,
        by_location={k: v for a in known for k, v in a.by_location.items()},
    )


class Api:
    """The routes, bound to one store and settings (one per process; tests make their own)."""

    def __init__(self, settings: Settings, store: ArtifactStore) -> None:
        self.settings = settings
        self.store = store
        # One set of snapshot parts per target (AIRCAST_TARGETS), made on first use, so an
        # instance asked for one target holds that target's parts alone.
        self._by_target: dict[str, Parts] = {}
        self._targets_lock = threading.Lock()
        self.parts = self.target_parts(settings.default_target)
        self.offsets = OffsetsCache(store, settings.api_refresh_seconds)
        self.scheme = get_scheme(settings.aqi_scheme)
        self._openapi: bytes | None = None
        self._dashboard: bytes | None = None
        # Exact paths -> (method, view); one prefix route for the per-location lookup. A dict
        # lookup instead of werkzeug's router: on this path every microsecond is throughput.
        self.routes: dict[str, tuple[str, Callable[[Request], bytes | tuple[bytes, str]]]] = {
            "/": ("GET", lambda r: (self.dashboard(), HTML)),
            "/health": ("GET", lambda r: self.health()),
            "/openapi.json": ("GET", lambda r: self.openapi()),
            "/v1/locations": ("GET", lambda r: self.locations(r.args)),
            "/v1/forecasts": ("GET", lambda r: self.forecasts(r.args)),
            "/v1/predict": ("POST", self.predict),
            "/v1/models/current": ("GET", lambda r: self.current_model(r.args)),
            "/v1/metrics": ("GET", lambda r: self.metrics(r.args)),
            "/v1/aqi": ("GET", lambda r: _encode(scheme_model(self.scheme))),
        }

    def _route(self, request: Request) -> bytes | tuple[bytes, str]:
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
        url = (path, request.query_string)
        body = serving.by_url.get(url)
        if body is None:
            body = cast(bytes, route[1](request))
            if (
                len(serving.by_url) < SnapshotCache.MAX_URLS
                and serving.url_bytes + len(body) <= SnapshotCache.MAX_ENCODED_BYTES
            ):
                serving.by_url[url] = body
                serving.url_bytes += len(body)  # counted even when shared with `encoded`
        return body

    def __call__(self, request: Request) -> Response:
        """Route one request; every error is JSON `{error, field?}`, never HTML, never a 500
        for anything the caller sent."""
        try:
            read_body(request, self.settings.max_request_bytes)  # 413 before any route reads it
            answer = self._route(request)
        except AircastError as exc:
            if exc.status == 500:  # ours (not the caller's, not a dependency's): worth a trace
                log.error("request failed", exc_info=exc)
            return _json_response(exc.to_dict(), exc.status)
        except HTTPException as exc:
            response = _json_response({"error": exc.description or exc.name}, exc.code or 500)
            if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
                response.headers["Allow"] = ", ".join(exc.valid_methods)
            return response
        except Exception as exc:
            log.exception("request failed")
            return _json_response({"error": f"internal error: {type(exc).__name__}"}, 500)
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
                    )
        return parts

    def parts_of(self, args: MultiDict[str, str]) -> Parts:
        """The parts of the request's `?target=` (default: the default target); a target
        not forecast here is a 400 naming `target`."""
        asked = args.get("target")
        if asked is None:
            return self.parts
        return self.target_parts(self.settings.target_of(asked))

    def _cached(self, serving: Serving, key: tuple[Any, ...], build: Callable[[], Any]) -> bytes:
        body = serving.encoded.get(key)
        if body is None:
            body = _encode(build())
            if serving.encoded_bytes + len(body) <= SnapshotCache.MAX_ENCODED_BYTES:
                serving.encoded[key] = body
                serving.encoded_bytes += len(body)
        return body

    # --- routes --------------------------------------------------------------------------
    def health(self) -> bytes:
        name = self.settings.model_name
        parts = list(self.parts.each())
        served = [serving for _, serving, _ in parts if serving is not None]
        errors = [f"part {k}: {e}" if self.parts.shards > 1 else e for k, _, e in parts if e]
        if not served:
            reason = "; ".join(errors) or "no serving snapshot yet (run predict)"
            return _encode(
                Health(
                    status="degraded",
                    reason=reason,
                    model_name=name,
                    targets=list(self.settings.forecast_targets),
                )
            )
        reasons = []
        missing = [k for k, serving, _ in parts if serving is None]
        if missing:
            reasons.append(f"no snapshot part for shards {missing} of {self.parts.shards}")
        oldest = min(served, key=lambda serving: serving.snapshot.issued_at).snapshot
        newest = max(served, key=lambda serving: serving.snapshot.issued_at).snapshot
        age = (dt.datetime.now(dt.UTC) - oldest.issued_at).total_seconds()
        if age > self.settings.api_stale_after_hours * 3600:
            reasons.append(f"serving snapshot is {age / 3600:.1f} h old")
        if errors:
            reasons.append(f"serving a cached snapshot; refresh failed: {'; '.join(errors)}")
        reason = "; ".join(reasons) or None
        return _encode(
            Health(
                status="degraded" if reason else "ok",
                reason=reason,
                model_name=newest.model_name,
                model_version=newest.model_version,
                issued_at=oldest.issued_at,
                snapshot_generated_at=oldest.generated_at,
                snapshot_age_seconds=round(age, 3),
                locations=sum(len(serving.snapshot.locations) for serving in served),
                pipeline=self._pipeline(),
                targets=list(self.settings.forecast_targets),
            )
        )

    def locations(self, args: MultiDict[str, str]) -> bytes:
        parts = self.parts_of(args)
        if parts.shards > 1:
            found = [loc for serving in parts.servings() for loc in serving.snapshot.locations]
            return _encode(LocationsResponse(locations=found))
        serving = parts.part(0).require()
        return self._cached(
            serving, ("locations",), lambda: LocationsResponse(locations=serving.snapshot.locations)
        )

    def forecast(self, location_id: str, args: MultiDict[str, str]) -> bytes:
        serving = self.parts_of(args).of(location_id).require()
        query = _query(args)
        hours = _hours(query, serving.snapshot)
        _location(serving, location_id)
        key = ("forecast", location_id, hours, query.observations)
        snap = serving.snapshot
        return self._cached(
            serving,
            key,
            lambda: _forecast(snap, location_id, hours, query.observations, self.scheme),
        )

    def forecasts(self, args: MultiDict[str, str]) -> bytes:
        query = _query(args)
        parts = self.parts_of(args)
        wanted = list(dict.fromkeys(args.getlist("location")))
        if parts.shards > 1 or len(wanted) > 8:  # arbitrary sets are not worth caching
            return _encode(self._forecasts(parts, query, wanted))
        serving = parts.part(0).require()
        key = ("forecasts", tuple(wanted), _hours(query, serving.snapshot), query.observations)
        return self._cached(serving, key, lambda: self._forecasts(parts, query, wanted))

    def _forecasts(
        self, parts: Parts, query: ForecastQuery, wanted: list[str]
    ) -> ForecastsResponse:
        """The forecasts of `wanted` (each from its part), or of every served location."""
        if wanted:
            picked = []
            for location_id in wanted:
                serving = parts.of(location_id).require()
                _location(serving, location_id, field="location")
                picked.append((serving, [location_id]))
            skipped: dict[str, str] = {}
        else:
            servings = parts.servings()
            picked = [
                (
                    sv,
                    [
                        i.location_id
                        for i in sv.snapshot.locations
                        if i.location_id in sv.snapshot.forecasts
                    ],
                )
                for sv in servings
            ]
            skipped = {s.location_id: s.reason for sv in servings for s in sv.snapshot.skipped}
        out = []
        for serving, ids in picked:
            hours = _hours(query, serving.snapshot)
            snap = serving.snapshot
            out += [_forecast(snap, i, hours, query.observations, self.scheme) for i in ids]
        return ForecastsResponse(forecasts=out, skipped=skipped)

    def metrics(self, args: MultiDict[str, str]) -> bytes:
        servings = self.parts_of(args).servings()
        newest = max(servings, key=lambda serving: serving.snapshot.issued_at).snapshot
        accuracy = (
            newest.accuracy
            if len(servings) == 1
            else merge_accuracy([sv.snapshot.accuracy for sv in servings])
        )
        return _encode(  # not cached per snapshot: the monitor stores the status after it
            MetricsResponse(
                model_name=newest.model_name,
                model_version=newest.model_version,
                issued_at=newest.issued_at,
                accuracy=accuracy,
                pipeline=self._pipeline(),
            )
        )

    def _pipeline(self) -> PipelineStatus | None:
        """The health conditions the monitor stored; None when none are (or unreadable)."""
        try:
            return PipelineStatus.model_validate(self.store.get_json(STATUS_KEY))
        except Exception:  # /health must answer whatever the bucket holds
            return None

    def current_model(self, args: MultiDict[str, str]) -> bytes:
        from common.forecasting.registry import model_name_for
        from common.serving.online import metadata_key, production_key

        s = self.settings
        name = model_name_for(s.model_name, s.target_of(args.get("target")), s.default_target)
        try:
            pointer = self.store.get_json(production_key(name))
            version = str(pointer["version"])
            metadata = self.store.get_json(metadata_key(name, version))
        except NotFound:
            raise Conflict(f"no production model for {name!r} yet") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable(f"production pointer for {name!r} is malformed: {exc}") from None
        except StoreError as exc:
            raise Unavailable(f"artifact store unreadable: {exc}") from None
        promoted = pointer.get("promoted_at")
        return _encode(
            CurrentModel(
                model_name=name,
                version=version,
                promoted_at=None if promoted is None else str(promoted),
                metadata=metadata if isinstance(metadata, dict) else {"value": metadata},
            )
        )

    def predict(self, request: Request) -> bytes:
        body = request.get_json(silent=True, force=True)
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object", field="body")
        try:
            params = PredictRequest.model_validate(body)
        except ValidationError as exc:
            name, message = validation_message(exc)
            raise BadRequest(message, field=name) from None
        from common.serving.online import predict_online  # heavy code loads on first use

        target = self.settings.target_of(params.target)  # 400 naming `target` if not here
        offsets = (
            self.offsets.get(intervals_key(target, self.settings.default_target))
            if self.settings.interval_adapt_eta > 0
            else None
        )
        place = self._place(params.location_id)
        return _encode(predict_online(params, self.settings, self.store, place, offsets))

    def _place(self, location_id: str | None) -> dict[str, object]:
        """Where an online prediction is made: a `location_id` known to the (held) snapshot
        lends its place and time zone, which the calendar features need; none is UTC."""
        place: dict[str, object] = {
            "location_id": location_id or "request",
            "latitude": None,
            "longitude": None,
            "timezone": "UTC",
        }
        if location_id is None:
            return place
        serving = self.parts.of(location_id).get()
        if serving is None:
            raise NotFound(
                f"location_id: unknown location {location_id!r} (no forecasts published yet)",
                field="location_id",
            )
        i = serving.by_id.get(location_id)
        if i is None:
            raise NotFound(f"location_id: unknown location {location_id!r}", field="location_id")
        loc = serving.snapshot.locations[i]
        place.update(latitude=loc.latitude, longitude=loc.longitude, timezone=loc.timezone or "UTC")
        return place

    def openapi(self) -> bytes:
        if self._openapi is None:
            self._openapi = json.dumps(openapi()).encode()
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
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    view = lambda path="": api(flask.request)  # noqa: E731
    app.add_url_rule("/", "root", view, methods=methods)
    app.add_url_rule("/<path:path>", "path", view, methods=methods)
    return app
