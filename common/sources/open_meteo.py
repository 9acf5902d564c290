"""Open-Meteo source (no key): CAMS air quality plus weather, many locations per request.

Two endpoints per batch of locations: the air-quality API for pollutants and the weather
forecast API for weather (the archive API for windows older than its ~3-month past). On a
live run about now, the forecast API's hours after as_of become `weather_forecasts` issued
at as_of and the air-quality API's become `air_quality_forecasts` (CAMS, as issued), never
for an as_of in the past nor for backfills: Open-Meteo archives no past CAMS forecast, so
they accrue from the hourly ingest on (past weather forecasts come from
`common.sources.open_meteo_archive`).
Timestamps are requested in GMT; units are checked against what aircast stores.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import requests
from pydantic import ValidationError

from common.core.config import Settings
from common.core.errors import validation_message
from common.core.schema import POLLUTANTS, VARIABLES, WEATHER
from common.sources.base import Batch, Location, Rejection, Source, Window, payload_text
from common.sources.http import SourceError, get, make_session
from common.sources.open_meteo_archive import past_weather_forecasts
from common.sources.open_meteo_shapes import (
    LOCATIONS_PER_REQUEST,
    LocationResponse,
    error_reason,
    unit_text,
)

AIR_VARIABLES = POLLUTANTS  # pm2_5, pm10, nitrogen_dioxide, ozone, sulphur_dioxide, carbon_monoxide
WEATHER_VARIABLES = WEATHER
FORECAST_DAYS_PAST_LIMIT = 90  # the forecast API serves ~92 past days; older goes to archive
FORECAST_AHEAD = dt.timedelta(hours=48)
FORECAST_FRESHNESS = dt.timedelta(hours=3)  # an as_of older than this is not "now"


class OpenMeteoSource(Source):
    name = "open-meteo"
    keeps_past_forecasts = True  # weather only: see common.sources.open_meteo_archive

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        super().__init__(settings)
        self.session = session or make_session(settings.http_retries)

    def fetch(self, locations: list[Location], window: Window) -> Batch:
        batch = Batch()
        for i in range(0, len(locations), LOCATIONS_PER_REQUEST):
            chunk = locations[i : i + LOCATIONS_PER_REQUEST]
            weather_url = self._weather_url(window)
            ahead = self._forecasts_wanted(window, weather_url)
            air = self._request(
                self.settings.open_meteo_air_url, chunk, window, AIR_VARIABLES, batch, ahead=ahead
            )
            weather = self._request(
                weather_url, chunk, window, WEATHER_VARIABLES, batch, ahead=ahead
            )
            self._merge(chunk, air, weather, window, batch, ahead)
        return batch

    def past_forecasts(self, locations: list[Location], window: Window, horizon: int) -> Batch:
        return past_weather_forecasts(self.session, self.settings, locations, window, horizon)

    def _forecasts_wanted(self, window: Window, weather_url: str) -> bool:
        """Keep the hours after as_of as weather forecasts only when they were forecasts.

        That is a live run whose as_of is about now, answered by the forecast API. For an
        as_of in the past (a replay, a late retry) the API's hours after as_of are what
        later happened (analysis or reanalysis), not what was forecast at as_of: writing
        them as forecasts would leak the future into predict, so none are written.
        """
        fresh = window.as_of >= dt.datetime.now(dt.UTC) - FORECAST_FRESHNESS
        return window.live and fresh and weather_url == self.settings.open_meteo_url

    def _weather_url(self, window: Window) -> str:
        recent = dt.datetime.now(dt.UTC) - dt.timedelta(days=FORECAST_DAYS_PAST_LIMIT)
        return (
            self.settings.open_meteo_url
            if window.start >= recent
            else self.settings.open_meteo_archive_url
        )

    def _request(
        self,
        url: str,
        chunk: list[Location],
        window: Window,
        variables: tuple[str, ...],
        batch: Batch,
        ahead: bool = False,
    ) -> dict[str, pd.DataFrame]:
        """One request for the chunk; returns location_id -> frame of the variables."""
        end = window.as_of + FORECAST_AHEAD if ahead else window.end
        params = {
            "latitude": ",".join(f"{loc.latitude:.4f}" for loc in chunk),
            "longitude": ",".join(f"{loc.longitude:.4f}" for loc in chunk),
            "hourly": ",".join(variables),
            "start_date": window.start.date().isoformat(),
            "end_date": end.date().isoformat(),
            "timezone": "GMT",
        }
        if "wind_speed_10m" in variables:
            params["wind_speed_unit"] = "kmh"
        try:
            resp = get(self.session, url, params, self.settings.http_timeout_seconds)
        except SourceError as exc:
            for loc in chunk:
                batch.failed[loc.location_id] = str(exc)
            return {}
        if resp.status_code != 200:
            reason = error_reason(resp)
            for loc in chunk:
                batch.failed[loc.location_id] = (
                    f"{resp.url.split('?')[0]}: HTTP {resp.status_code}: {reason}"
                )
            return {}
        try:
            body = resp.json()
        except ValueError:
            for loc in chunk:
                batch.failed[loc.location_id] = "malformed JSON from Open-Meteo"
                batch.rejected.append(
                    Rejection(
                        loc.location_id, None, "malformed JSON", payload_text(resp.text[:5000])
                    )
                )
            return {}
        items = body if isinstance(body, list) else [body]
        if len(items) != len(chunk):
            for loc in chunk:
                batch.failed[loc.location_id] = (
                    f"expected {len(chunk)} locations in the answer, got {len(items)}"
                )
            return {}
        out = {}
        for loc, item in zip(chunk, items, strict=True):
            frame = self._parse(loc, item, variables, batch)
            if frame is not None:
                out[loc.location_id] = frame
        return out

    def _parse(
        self, loc: Location, item: Any, variables: tuple[str, ...], batch: Batch
    ) -> pd.DataFrame | None:
        try:
            parsed = LocationResponse.model_validate(item)
        except ValidationError as exc:
            reason = f"malformed Open-Meteo answer: {validation_message(exc, 'response')[1]}"
            batch.failed[loc.location_id] = reason
            batch.rejected.append(Rejection(loc.location_id, None, reason, payload_text(item)))
            return None
        hourly = parsed.hourly.model_extra or {}
        frame = pd.DataFrame({"ts": parsed.hourly.time})
        for name in variables:
            unit = parsed.hourly_units.get(name)
            if name not in hourly:
                continue  # a variable the API does not offer here stays missing
            if unit is not None and unit_text(unit) != VARIABLES[name].unit:
                reason = f"{name}: unit {unit!r}, expected {VARIABLES[name].unit!r}"
                batch.rejected.append(
                    Rejection(loc.location_id, None, reason, payload_text({name: unit}))
                )
                continue
            frame[name] = hourly[name]
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="ISO8601")
        frame.loc[frame["ts"].isna(), "ts"] = None
        return frame

    def _merge(
        self,
        chunk: list[Location],
        air: dict[str, pd.DataFrame],
        weather: dict[str, pd.DataFrame],
        window: Window,
        batch: Batch,
        ahead: bool,
    ) -> None:
        frames: list[pd.DataFrame] = []
        forecasts: list[pd.DataFrame] = []
        cams: list[pd.DataFrame] = []
        for loc in chunk:
            a, w = air.get(loc.location_id), weather.get(loc.location_id)
            if a is None and w is None:
                continue
            after = pd.Timestamp(window.as_of)
            for got, kept in ((w, forecasts), (a, cams)):
                future = None if got is None or not ahead else got[got["ts"] > after]
                if future is not None and not future.empty:
                    kept.append(
                        future.assign(
                            location_id=loc.location_id, issued_at=pd.Timestamp(window.as_of)
                        )
                    )
            if a is not None and w is not None:
                obs = a.merge(w, on="ts", how="outer")
            else:
                obs = a if a is not None else w
            obs = obs[obs["ts"].isna() | (obs["ts"] <= pd.Timestamp(window.end))]
            obs = obs.assign(location_id=loc.location_id)
            values = obs.drop(columns=["location_id"]).astype(object).where(obs.notna(), None)
            obs["payload"] = [payload_text(r) for r in values.to_dict("records")]
            frames.append(obs)
        if frames:
            batch.observations = pd.concat([batch.observations, *frames], ignore_index=True)
        if forecasts:
            batch.weather_forecasts = pd.concat(
                [batch.weather_forecasts, *forecasts], ignore_index=True
            )
        if cams:
            batch.air_quality_forecasts = pd.concat(
                [batch.air_quality_forecasts, *cams], ignore_index=True
            )
