"""The api's answers rendered from a held snapshot: the per-location forecast with its index
values, the nearest locations over every part, the place of an online prediction, the
network's accuracy merged from the shards' parts, the country outlines, and the JSON
encoding of every answer."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from werkzeug.wrappers import Response

from common.core.aqi import US_EPA, Scheme
from common.core.config import Settings
from common.core.errors import BadRequest, NotFound
from common.core.timeutil import in_future, iso
from common.forecasting.snapshot import Accuracy, HorizonAccuracy, Snapshot
from common.runtime.body import truncate
from common.serving import places
from common.serving.cache import Parts, Serving
from common.serving.indices import air_now, forecast_points
from common.serving.models import (
    ForecastQuery,
    ForecastsResponse,
    Health,
    LocationEntry,
    LocationForecastResponse,
    PastForecasts,
    PipelineStatus,
    RecentValues,
)
from common.serving.part import Part

JSON = "application/json"
HTML = "text/html"


def json_response(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status, mimetype=JSON)


def encode(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_none=False).encode()


def location_forecast(
    part: Part, location_id: str, hours: int, with_obs: bool, scheme: Scheme = US_EPA
) -> LocationForecastResponse:
    """One location's answer, decoded from its part on demand."""
    snapshot = part.head
    fc = part.forecasts[location_id]
    history = part.observations.get(location_id)
    points, worst = forecast_points(scheme, snapshot.target, fc, history, hours)
    recent = history if with_obs else None
    past = part.hindcast.get(location_id) if with_obs else None
    return LocationForecastResponse(
        location_id=location_id,
        model_name=snapshot.model_name,
        model_version=fc.model_version,
        target=snapshot.target,
        unit=snapshot.unit,
        issued_at=fc.issued_at,
        stale=fc.issued_at < snapshot.issued_at,
        points=points,
        observations=RecentValues(start=recent.start, values=recent.values) if recent else None,
        hindcast=PastForecasts(**past.model_dump()) if past else None,
        worst=worst,
        now=air_now(scheme, snapshot.target, history),
    )


def entry(loc: Any, distance: float | None = None) -> LocationEntry:
    """A snapshot location as the api lists it, with its distance from the asked point."""
    return LocationEntry.model_construct(
        **{k: getattr(loc, k) for k in type(loc).model_fields},
        distance_km=None if distance is None else round(distance, 1),
    )


def hours_of(query: ForecastQuery, snapshot: Snapshot) -> int:
    if query.hours is None:
        return snapshot.horizon
    if query.hours > snapshot.horizon:
        raise BadRequest(
            f"hours: must be at most the forecast horizon, {snapshot.horizon}", field="hours"
        )
    return query.hours


def require_location(serving: Serving, location_id: str, field: str = "location_id") -> None:
    part = serving.part
    if not part.is_location(location_id) and location_id not in part.forecasts:
        raise NotFound(f"unknown location {truncate(location_id, 100)!r}", field=field)
    if location_id not in part.forecasts:
        skipped = part.head.skipped
        reason = next((s.reason for s in skipped if s.location_id == location_id), None)
        raise NotFound(
            f"no forecast for {location_id!r} in the latest run"
            + (f": {reason}" if reason else ""),
            field=field,
        )


def nearest(parts: Parts, lat: float, lon: float, k: int) -> list[tuple[Any, float]]:
    """The k forecast locations nearest to (lat, lon) over every part (from the parts'
    coordinates; only the k found are decoded)."""
    found: list[tuple[Any, float]] = []
    for serving in parts.servings():
        part = serving.part
        near = places.nearest_rows(part.latitude, part.longitude, part.forecast_rows(), lat, lon, k)
        found += [(part.location(row), d) for row, d in near]
    return sorted(found, key=lambda pair: pair[1])[:k]


def place_of(parts: Parts, location_id: str | None) -> dict[str, object]:
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
    serving = parts.of(location_id).get()
    if serving is None:
        raise NotFound(
            f"location_id: unknown location {truncate(location_id, 100)!r} "
            "(no forecasts published yet)",
            field="location_id",
        )
    loc = serving.part.location_of(location_id)
    if loc is None:
        raise NotFound(
            f"location_id: unknown location {truncate(location_id, 100)!r}",
            field="location_id",
        )
    place.update(latitude=loc.latitude, longitude=loc.longitude, timezone=loc.timezone or "UTC")
    return place


def _weighted(pairs: list[tuple[int, float]]) -> float:
    return sum(n * x for n, x in pairs) / max(sum(n for n, _ in pairs), 1)


def merge_accuracy(parts: list[Accuracy | None]) -> Accuracy | None:
    """One network's accuracy from the shards' parts. Predict computes it once a run, for
    the whole network, in shard 0's part (`network`): that one as it is, labelled by its own
    window (an hour behind the other parts when shard 0's last run failed). Parts published
    before that each carry their shard's: merged per horizon, the n-weighted means of
    MAE, coverage and persistence MAE (CAMS's by its cams_n) and the root of the n-weighted
    mean squared error; per location, the union (each location is in one part)."""
    known = [a for a in parts if a is not None]
    network = [a for a in known if a.network]
    if network:  # never pooled with a shard's own, which it already counts
        return max(network, key=lambda a: a.window_end)
    if not known:
        return None
    by_h: dict[int, list[Any]] = {}
    for part in known:
        for h in part.by_horizon:
            by_h.setdefault(h.horizon_h, []).append(h)
    rows = []
    for horizon, group in sorted(by_h.items()):
        persisted = [(h.n, h.persistence_mae) for h in group if h.persistence_mae is not None]
        cams = [(h.cams_n, h.cams_mae, h.cams_model_mae) for h in group if h.cams_mae is not None]
        cams_n = sum(c[0] for c in cams)
        rows.append(
            HorizonAccuracy(
                horizon_h=horizon,
                n=sum(h.n for h in group),
                mae=round(_weighted([(h.n, h.mae) for h in group]), 3),
                rmse=round(_weighted([(h.n, h.rmse**2) for h in group]) ** 0.5, 3),
                coverage=round(_weighted([(h.n, h.coverage) for h in group]), 3),
                persistence_mae=round(_weighted(persisted), 3) if persisted else None,
                cams_n=cams_n,
                cams_mae=round(_weighted([(n, m) for n, m, _ in cams]), 3) if cams_n else None,
                cams_model_mae=(
                    round(_weighted([(n, m) for n, _, m in cams if m is not None]), 3)
                    if cams_n
                    else None
                ),
            )
        )
    return Accuracy(
        window_start=min(a.window_start for a in known),
        window_end=max(a.window_end for a in known),
        by_horizon=rows,
        by_location={k: v for a in known for k, v in a.by_location.items()},
    )


def forecasts_of(
    parts: Parts, query: ForecastQuery, wanted: list[str], scheme: Scheme
) -> ForecastsResponse:
    """The forecasts of `wanted` (each from its part), or of every served location."""
    if wanted:
        picked = []
        for location_id in wanted:
            serving = parts.of(location_id).require()
            require_location(serving, location_id, field="location")
            picked.append((serving, [location_id]))
        skipped: dict[str, str] = {}
    else:
        servings = parts.servings()
        picked = [(sv, [sv.part.ids[row] for row in sv.part.forecast_rows()]) for sv in servings]
        skipped = {s.location_id: s.reason for sv in servings for s in sv.head.skipped}
    out = []
    for serving, ids in picked:
        hours = hours_of(query, serving.head)
        part = serving.part
        out += [location_forecast(part, i, hours, query.observations, scheme) for i in ids]
    return ForecastsResponse(forecasts=out, skipped=skipped)


def health_of(
    settings: Settings, parts: Parts, read_pipeline: Callable[[], PipelineStatus | None]
) -> Health:
    """`/health`: degraded with the reasons (no part served, a part missing, stale or future-dated,
    stale locations, a refresh failed); the stored status is read only when a part is served."""
    name = settings.model_name
    each = list(parts.each())
    served = [serving for _, serving, _ in each if serving is not None]
    errors = [f"part {k}: {e}" if parts.shards > 1 else e for k, _, e in each if e]
    if not served:
        return Health(
            status="degraded",
            reason="; ".join(errors) or "no serving snapshot yet (run predict)",
            model_name=name,
            targets=list(settings.forecast_targets),
        )
    reasons = []
    missing = [k for k, serving, _ in each if serving is None]
    if missing:
        reasons.append(f"no snapshot part for shards {missing} of {parts.shards}")
    oldest = min(served, key=lambda serving: serving.head.issued_at).head
    newest = max(served, key=lambda serving: serving.head.issued_at).head
    age = (dt.datetime.now(dt.UTC) - oldest.issued_at).total_seconds()
    if age > settings.api_stale_after_hours * 3600:
        reasons.append(f"serving snapshot is {age / 3600:.1f} h old")
    if in_future(newest.issued_at):  # no run is about a later hour: a clock went wrong
        reasons.append(f"serving snapshot is dated after now ({iso(newest.issued_at)})")
    stale = sum(len(serving.head.stale) for serving in served)
    if stale:
        reasons.append(f"{stale} locations served their previous forecast (stale)")
    pipeline = read_pipeline()
    if pipeline is not None and in_future(pipeline.as_of):
        reasons.append(f"the stored status is dated after now ({iso(pipeline.as_of)})")
    if errors:
        reasons.append(f"serving a cached snapshot; refresh failed: {'; '.join(errors)}")
    reason = "; ".join(reasons) or None
    return Health(
        status="degraded" if reason else "ok",
        reason=reason,
        model_name=newest.model_name,
        model_version=newest.model_version,
        issued_at=oldest.issued_at,
        snapshot_generated_at=oldest.generated_at,
        snapshot_age_seconds=round(age, 3),
        locations=sum(len(serving.part) for serving in served),
        stale_locations=stale,
        pipeline=pipeline,
        targets=list(settings.forecast_targets),
    )


def countries_response(accept_encoding: str) -> Response:
    """Country outlines (TopoJSON, package data): gzipped as shipped to a client that takes
    gzip (every browser), else inflated; cached by the browser for a day."""
    body = places.countries_gz()
    gzip_ok = "gzip" in accept_encoding
    if not gzip_ok:
        body = gzip.decompress(body)
    response = Response(body, 200, mimetype=JSON)
    if gzip_ok:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["Vary"] = "Accept-Encoding"
    return response
