"""data.gov.sg source: Singapore's hourly PM2.5 by region (NEA, real-time API v2).

One request per Singapore day in the window (`?date=YYYY-MM-DD`), following
`paginationToken` until it is absent. Each region (north, south, east, west, central)
becomes a location `sg-<region>`, placed at the API's label coordinates.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pandas as pd
import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.core.config import Settings
from common.core.errors import validation_message
from common.sources.base import Batch, Location, Rejection, Source, Window, payload_text
from common.sources.http import SourceError, get, make_session

SGT = zoneinfo.ZoneInfo("Asia/Singapore")
MAX_PAGES = 50


class _Label(BaseModel):
    latitude: float
    longitude: float


class _Region(BaseModel):
    name: str
    labelLocation: _Label


class _Item(BaseModel):
    model_config = ConfigDict(extra="allow")

    timestamp: str
    readings: dict[str, dict[str, Any]]


class _Data(BaseModel):
    regionMetadata: list[_Region] = []
    items: list[_Item]
    paginationToken: str | None = None


class _Response(BaseModel):
    code: int
    errorMsg: str | None = ""
    data: _Data | None = Field(default=None)


def location_id(region: str) -> str:
    return f"sg-{region.strip().lower()}"


class DataGovSgSource(Source):
    name = "data-gov-sg"
    needs_locations = False

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        super().__init__(settings)
        self.session = session or make_session(settings.http_retries)

    def fetch(self, locations: list[Location], window: Window) -> Batch:
        wanted = {loc.location_id for loc in locations} or None
        batch = Batch()
        day = window.start.astimezone(SGT).date()
        last = window.end.astimezone(SGT).date()
        regions: dict[str, Location] = {}
        while day <= last:
            self._day(day, batch, regions)
            day += dt.timedelta(days=1)
        obs = batch.observations
        if wanted is not None and not obs.empty:
            batch.observations = obs[obs["location_id"].isin(wanted) | obs["location_id"].isna()]
        batch.locations = [
            loc for loc in regions.values() if wanted is None or loc.location_id in wanted
        ]
        if wanted is not None:
            for missing in wanted - set(regions):
                batch.failed.setdefault(missing, "region not in the data.gov.sg answer")
        return batch

    def _day(self, day: dt.date, batch: Batch, regions: dict[str, Location]) -> None:
        """Every page of one day's readings into `batch` (and its regions into `regions`);
        a failed page marks the day failed (`sg:<day>`) and ends it."""
        token: str | None = None
        for _ in range(MAX_PAGES):
            data = self._page(day, token, batch)
            if data is None:
                return
            self._take(data, batch, regions)
            token = data.paginationToken
            if not token:
                return
        batch.failed[f"sg:{day}"] = f"more than {MAX_PAGES} pages; stopped"

    def _page(self, day: dt.date, token: str | None, batch: Batch) -> _Data | None:
        """One page of the day's answer; None when there is none (nothing published yet, or
        a failure, recorded in `batch` and quarantined when the answer was malformed)."""
        params = {"date": day.isoformat(), **({"paginationToken": token} if token else {})}
        try:
            resp = get(
                self.session,
                self.settings.data_gov_sg_url,
                params,
                self.settings.http_timeout_seconds,
            )
        except SourceError as exc:
            batch.failed[f"sg:{day}"] = str(exc)
            return None
        if resp.status_code == 404:
            return None  # "Data not found": nothing published for that day yet
        try:
            body = resp.json()
        except ValueError:
            if resp.status_code != 200:  # an error page, not data: nothing to quarantine
                batch.failed[f"sg:{day}"] = f"HTTP {resp.status_code}"
                return None
            batch.failed[f"sg:{day}"] = "malformed JSON"
            batch.rejected.append(
                Rejection(None, None, "malformed JSON", payload_text(resp.text[:5000]))
            )
            return None
        if resp.status_code != 200:
            msg = body.get("errorMsg") if isinstance(body, dict) else None
            batch.failed[f"sg:{day}"] = f"HTTP {resp.status_code}: {msg or body}"
            return None
        try:
            parsed = _Response.model_validate(body)
        except ValidationError as exc:
            reason = f"malformed data.gov.sg answer: {validation_message(exc, 'response')[1]}"
            batch.failed[f"sg:{day}"] = reason
            batch.rejected.append(Rejection(None, None, reason, payload_text(body)))
            return None
        if parsed.code != 0 or parsed.data is None:
            batch.failed[f"sg:{day}"] = f"data.gov.sg error {parsed.code}: {parsed.errorMsg}"
            return None
        return parsed.data

    def _take(self, data: _Data, batch: Batch, regions: dict[str, Location]) -> None:
        """A page's regions (as locations) and its hourly pm2_5 readings (as observations)."""
        for r in data.regionMetadata:
            lid = location_id(r.name)
            regions[lid] = Location(
                lid,
                f"Singapore {r.name}",
                r.labelLocation.latitude,
                r.labelLocation.longitude,
                self.name,
                "Asia/Singapore",
            )
        rows = []
        for item in data.items:
            for region, value in item.readings.get("pm25_one_hourly", {}).items():
                rows.append(
                    {
                        "location_id": location_id(region),
                        "ts": item.timestamp,
                        "pm2_5": value,
                        "payload": payload_text(item.model_dump()),
                    }
                )
        if rows:
            frame = pd.DataFrame(rows)
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="ISO8601")
            batch.observations = pd.concat([batch.observations, frame], ignore_index=True)
