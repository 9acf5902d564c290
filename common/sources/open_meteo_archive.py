"""Past weather forecasts from Open-Meteo's archives, for training on forecasts as issued
from a deployment's first day (`aircast backfill --forecasts`).

Previous Runs API (`previous-runs-api.open-meteo.com/v1/forecast`): `<var>_previous_dayN`
is the value of the newest run whose lead time at the hour was at least 24·N h (the docs:
"predicted 24 hours before valid time", up to 7 days; open-meteo OmFileSplitter: later runs
overwrite, so the lead is 24·N h up to 24·N h plus the model's update interval). The run's
own time is not returned, so a row is stored with `issued_at = ts - 24·N h +
PUBLICATION_DELAY` (an upper bound on when it was available: a run is published a few hours
after its initialisation) and `kind = previous-runs`. Only the days a horizon needs are
asked for (`days_for`): the call weight grows with the number of variables.

Historical Forecast API (`historical-forecast-api...`): the first hours of each run
stitched into one series, closer to an analysis than to a forecast (lead 0 to the update
interval). It fills the hours where Previous Runs has nothing (most models are archived
there from 2024 on); it has no issue time at all, so its rows get `issued_at = ts -
HISTORICAL_RANK` as a placeholder that ranks them below every other forecast of the hour
(the as-issued rule picks them only where nothing else was issued) and `kind =
historical-forecast`; the model card reports the share of rows of each kind.

Past CAMS forecasts are not archived by Open-Meteo (no `_previous_dayN` for air quality,
open-meteo#1449): none are backfilled.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd
import requests
from pydantic import ValidationError

from common.core.config import Settings
from common.core.schema import VARIABLES, WEATHER
from common.sources.base import Batch, Location, Rejection, Window, payload_text
from common.sources.http import SourceError, get
from common.sources.open_meteo_shapes import (
    LOCATIONS_PER_REQUEST,
    LocationResponse,
    error_reason,
    unit_text,
)

PUBLICATION_DELAY = dt.timedelta(hours=6)  # a run is available a few hours after its start
HISTORICAL_RANK = dt.timedelta(days=8)  # below previous_day7: picked only when alone
MAX_PREVIOUS_DAY = 7


def days_for(horizon: int) -> list[int]:
    """The previous_dayN a horizon needs: day N serves horizons up to 24·N - 6 h."""
    last = math.ceil((horizon + PUBLICATION_DELAY.total_seconds() / 3600) / 24)
    return list(range(1, min(max(last, 1), MAX_PREVIOUS_DAY) + 1))


def past_weather_forecasts(
    session: requests.Session,
    settings: Settings,
    locations: list[Location],
    window: Window,
    horizon: int,
) -> Batch:
    """Weather forecasts for the hours of `window` as the archives hold them (module doc)."""
    batch = Batch()
    days = days_for(horizon)
    for i in range(0, len(locations), LOCATIONS_PER_REQUEST):
        chunk = locations[i : i + LOCATIONS_PER_REQUEST]
        names = [f"{v}_previous_day{n}" for n in days for v in WEATHER]
        url = settings.open_meteo_previous_runs_url
        previous = _fetch(session, settings, url, chunk, window, names, batch)
        frames, missing = [], {}
        for loc in chunk:
            got = previous.get(loc.location_id)
            rows = _previous_rows(got, days) if got is not None else pd.DataFrame()
            frames.append(rows.assign(location_id=loc.location_id) if len(rows) else rows)
            covered = set(rows["ts"]) if len(rows) else set()
            hours = pd.date_range(window.start, window.end, freq="h", tz="UTC")
            gaps = [h for h in hours if h not in covered]
            if gaps and loc.location_id not in batch.failed:
                missing[loc.location_id] = gaps
        if missing:
            lacking = [loc for loc in chunk if loc.location_id in missing]
            url = settings.open_meteo_historical_forecast_url
            hist = _fetch(session, settings, url, lacking, window, list(WEATHER), batch)
            for loc in lacking:
                got = hist.get(loc.location_id)
                if got is None:
                    continue
                rows = got[got["ts"].isin(missing[loc.location_id])]
                rows = rows.dropna(how="all", subset=[c for c in WEATHER if c in rows])
                frames.append(
                    rows.assign(
                        location_id=loc.location_id,
                        issued_at=rows["ts"] - HISTORICAL_RANK,
                        kind="historical-forecast",
                    )
                )
        frames = [f for f in frames if len(f)]
        if frames:
            batch.weather_forecasts = pd.concat(
                [batch.weather_forecasts, *frames], ignore_index=True
            )
    return batch


def _previous_rows(frame: pd.DataFrame, days: list[int]) -> pd.DataFrame:
    """One row per (hour, N) with a value: the weather of `<var>_previous_dayN`."""
    out = []
    for n in days:
        cols = {f"{v}_previous_day{n}": v for v in WEATHER if f"{v}_previous_day{n}" in frame}
        part = frame[["ts", *cols]].rename(columns=cols)
        part = part.dropna(how="all", subset=list(cols.values()))
        if len(part):
            issued = part["ts"] - dt.timedelta(hours=24 * n) + PUBLICATION_DELAY
            out.append(part.assign(issued_at=issued, kind="previous-runs"))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _fetch(
    session: requests.Session,
    settings: Settings,
    url: str,
    chunk: list[Location],
    window: Window,
    names: list[str],
    batch: Batch,
) -> dict[str, pd.DataFrame]:
    """One request for the chunk: location_id -> frame (ts, each name); a failed request
    marks the chunk's locations failed; a wrong unit leaves that column out, quarantined."""
    params = {
        "latitude": ",".join(f"{loc.latitude:.4f}" for loc in chunk),
        "longitude": ",".join(f"{loc.longitude:.4f}" for loc in chunk),
        "hourly": ",".join(names),
        "start_date": window.start.date().isoformat(),
        "end_date": window.end.date().isoformat(),
        "timezone": "GMT",
        "wind_speed_unit": "kmh",
    }
    try:
        resp = get(session, url, params, settings.http_timeout_seconds)
    except SourceError as exc:
        items: list[Any] | str = str(exc)
    else:
        items = _items(resp, url, len(chunk))
    if isinstance(items, str):  # the whole request failed
        for loc in chunk:
            batch.failed[loc.location_id] = items
        return {}
    out = {}
    for loc, item in zip(chunk, items, strict=True):
        frame = _location_frame(loc, item, names, window, batch)
        if frame is not None:
            out[loc.location_id] = frame
    return out


def _items(resp: requests.Response, url: str, n: int) -> list[Any] | str:
    """The answer's `n` location items, or why the request failed (for all of them)."""
    if resp.status_code != 200:
        return f"{url}: HTTP {resp.status_code}: {error_reason(resp)}"
    try:
        body: Any = resp.json()
    except ValueError:
        return "malformed JSON from Open-Meteo"
    items = body if isinstance(body, list) else [body]
    if len(items) != n:
        return f"expected {n} locations in the answer, got {len(items)}"
    return items


def _location_frame(
    loc: Location, item: Any, names: list[str], window: Window, batch: Batch
) -> pd.DataFrame | None:
    """One location's frame (ts, each name) within the window; None when its item is
    malformed (the location failed, the item quarantined); a wrong unit leaves that column
    out, quarantined."""
    try:
        parsed = LocationResponse.model_validate(item)
    except ValidationError:
        reason = "malformed Open-Meteo answer"
        batch.failed[loc.location_id] = reason
        batch.rejected.append(Rejection(loc.location_id, None, reason, payload_text(item)))
        return None
    hourly = parsed.hourly.model_extra or {}
    frame = pd.DataFrame({"ts": pd.to_datetime(parsed.hourly.time, utc=True)})
    for name in names:
        if name not in hourly:
            continue
        base = name.split("_previous_day")[0]
        unit = parsed.hourly_units.get(name)
        if unit is not None and unit_text(unit) != VARIABLES[base].unit:
            reason = f"{name}: unit {unit!r}, expected {VARIABLES[base].unit!r}"
            batch.rejected.append(
                Rejection(loc.location_id, None, reason, payload_text({name: unit}))
            )
            continue
        values = pd.to_numeric(pd.Series(hourly[name], dtype=object), errors="coerce")
        frame[name] = values.to_numpy(dtype=float)
    keep = (frame["ts"] >= pd.Timestamp(window.start)) & (frame["ts"] <= pd.Timestamp(window.end))
    return frame[keep.to_numpy()].reset_index(drop=True)
