"""AQICN / WAQI source: the station nearest each location, current hour only.

Its values are US-AQI sub-indices, not concentrations (client maintainers say so), so they
land in `us_aqi`, `us_aqi_pm2_5` and `us_aqi_pm10`, never in `pm2_5`. The token comes
from AIRCAST_AQICN_TOKEN (a Secret Manager secret on Google Cloud) and is scrubbed from
every error message. WAQI's terms forbid redistributing cached data: keep such a
warehouse private.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import requests
from pydantic import BaseModel, ConfigDict, ValidationError

from common.core.config import Settings
from common.core.errors import validation_message
from common.core.meteo import KMH_PER_MS
from common.sources.base import Batch, Location, Rejection, Source, Window, payload_text
from common.sources.http import SourceError, get, make_session, redact

IAQI = {  # WAQI key -> (column, scale)
    "pm25": ("us_aqi_pm2_5", 1.0),
    "pm10": ("us_aqi_pm10", 1.0),
    "t": ("temperature_2m", 1.0),
    "h": ("relative_humidity_2m", 1.0),
    "p": ("surface_pressure", 1.0),
    "w": ("wind_speed_10m", KMH_PER_MS),  # WAQI reports wind in m/s
    "dew": ("dew_point_2m", 1.0),
}


class _Time(BaseModel):
    iso: str


class _Feed(BaseModel):
    model_config = ConfigDict(extra="allow")

    aqi: int | float | str | None = None
    time: _Time
    iaqi: dict[str, dict[str, Any]] = {}


class AqicnSource(Source):
    name = "aqicn"

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        super().__init__(settings)
        self.session = session or make_session(settings.http_retries)
        secret = settings.aqicn_token
        self.token = secret.get_secret_value() if secret is not None else None

    def fetch(self, locations: list[Location], window: Window) -> Batch:
        batch = Batch()
        if not self.token:
            for loc in locations:
                batch.failed[loc.location_id] = "AIRCAST_AQICN_TOKEN is not set"
            return batch
        rows = []
        for loc in locations:
            try:
                rows.append(self._one(loc, batch))
            except SourceError as exc:
                batch.failed[loc.location_id] = redact(str(exc), [self.token])
        rows = [r for r in rows if r is not None]
        if rows:
            frame = pd.DataFrame(rows)
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="ISO8601")
            batch.observations = frame
        return batch

    def _one(self, loc: Location, batch: Batch) -> dict[str, Any] | None:
        url = f"{self.settings.aqicn_url.rstrip('/')}/feed/geo:{loc.latitude};{loc.longitude}/"
        resp = get(
            self.session,
            url,
            {"token": self.token},
            self.settings.http_timeout_seconds,
            secrets=[self.token],
        )
        try:
            body = resp.json()
        except ValueError:
            if resp.status_code != 200:  # an error page, not data: nothing to quarantine
                raise SourceError(f"AQICN answered HTTP {resp.status_code}") from None
            batch.rejected.append(
                Rejection(loc.location_id, None, "malformed JSON", payload_text(resp.text[:5000]))
            )
            raise SourceError(f"malformed JSON from AQICN (HTTP {resp.status_code})") from None
        if not isinstance(body, dict) or body.get("status") != "ok":
            message = body.get("data") if isinstance(body, dict) else body
            raise SourceError(
                f"AQICN error (HTTP {resp.status_code}): {redact(str(message), [self.token])}"
            )
        try:
            feed = _Feed.model_validate(body.get("data"))
        except ValidationError as exc:
            reason = f"malformed AQICN feed: {validation_message(exc, where='data')[1]}"
            batch.rejected.append(Rejection(loc.location_id, None, reason, payload_text(body)))
            raise SourceError(reason) from None
        row: dict[str, Any] = {
            "location_id": loc.location_id,
            "ts": feed.time.iso,
            "payload": payload_text(body.get("data")),
        }
        row["us_aqi"] = feed.aqi if isinstance(feed.aqi, int | float) else None  # "-": no value
        for key, (column, scale) in IAQI.items():
            v = feed.iaqi.get(key, {}).get("v")
            row[column] = v * scale if isinstance(v, int | float) else v
        return row
