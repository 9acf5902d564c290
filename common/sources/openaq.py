"""OpenAQ (API v3) source: measurements from government and low-cost monitors worldwide.

Facts used here are in ../shared/reference/openaq.md, with their sources.

- **Discovery.** `GET /locations` by bounding box, country (`iso`, one query per code) and/or
  provider (`providers_id`), only stationary locations that measure a pollutant aircast
  stores (`parameters_id`). Each becomes location `openaq-<id>` in `locations`, with its
  sensors (id, parameter, unit) as JSON in the `sensors` column. Per location and pollutant
  one sensor is read: µg/m³ first, then ppb, then ppm, then the lowest id.
- **Values.** `GET /sensors/{id}/hours`: hourly means; the row's `ts` is the start of the
  hour (`period.datetimeFrom.utc`). Times are always sent with `Z`, since a time without an
  offset is the station's local time; the server keeps `datetime_from < end of hour <=
  datetime_to`. A scheduled run whose sensors do not fit in AIRCAST_OPENAQ_REQUESTS_PER_RUN
  reads `GET /parameters/{id}/latest` instead (every sensor's newest value, a page per 1,000
  sensors) plus `/hours` for a slice of the sensors that rotates hour by hour, so each
  sensor's full hours (late ones too) arrive within a rotation (docs/data.md).
- **Paging** until a page shorter than `limit` (`meta.found` may be ">1000", an int or null).
- **Rate limits.** A `Pacer` per key and process (60/minute, 2,000/hour by default), a pause
  when `x-ratelimit-remaining` reaches 0, and 429s retried after Retry-After or
  `x-ratelimit-reset` (common.sources.http).
- **Units** become µg/m³: ppb and ppm of a gas at 25 °C and 1 atm (molar volume 24.465 L/mol)
  with its molar mass; mg/m³ times 1,000. Any other unit is quarantined.
- **Bad values.** A value outside the variable's physical range (e.g. -999) is quarantined
  alone; the location's other pollutants for that hour still land.

The key is sent in the X-API-Key header only, never in a URL, and is scrubbed from every
error message; rejected rows carry the API's answer, which never holds the key.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pandas as pd
import requests
from pydantic import ValidationError

from common.core.config import Settings
from common.core.errors import validation_message
from common.core.logs import event
from common.core.schema import VARIABLES
from common.core.timeutil import floor_hour, iso, parse_time
from common.sources.base import Batch, Location, Rejection, Source, Window, payload_text
from common.sources.http import Pacer, SourceError, get, make_session, redact
from common.sources.openaq_api import (
    COLUMNS,
    PARAMETER_IDS,
    Rows,
    Sensor,
    _Hour,
    _Latest,
    _LocationItem,
    _Page,
    factor,
    rank,
    unit,
)

log = logging.getLogger("aircast.sources.openaq")
PAGE_LIMIT = 1000  # the API's largest page
MAX_PAGES = 200  # per query: 200,000 locations or sensor values
LOCATION_PREFIX = "openaq-"
HOUR = dt.timedelta(hours=1)


# One pacer per key and budget in a process: a backfill's chunks (one source each) share it.
_PACERS: dict[tuple[str, int, int], Pacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(settings: Settings, key: str) -> Pacer:
    budget = (key, settings.openaq_requests_per_minute, settings.openaq_requests_per_hour)
    with _PACERS_LOCK:
        if budget not in _PACERS:
            _PACERS[budget] = Pacer(budget[1], budget[2])
        return _PACERS[budget]


class OpenAQSource(Source):
    name = "openaq"
    needs_locations = False  # discovered by bbox / country / provider

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        super().__init__(settings)
        secret = settings.openaq_api_key
        self.key = secret.get_secret_value() if secret is not None else None
        self.session = session or make_session(settings.http_retries)
        if self.key:
            self.session.headers["X-API-Key"] = self.key
        self.pacer = pacer or pacer_for(settings, self.key or "")
        self.base = settings.openaq_url.rstrip("/")
        self.requests = 0  # made by this source (the pacer counts the whole process)

    # -- fetch -------------------------------------------------------------------------------
    def fetch(self, locations: list[Location], window: Window) -> Batch:
        batch = Batch()
        if not self.key:
            batch.failed["openaq"] = "AIRCAST_OPENAQ_API_KEY is not set"
            return batch
        wanted = {loc.location_id for loc in locations} or None
        try:
            found, sensors = self.discover(batch)
        except SourceError as exc:
            batch.failed["openaq:discovery"] = self._clean(exc)
            return batch
        if wanted is not None:
            found = [loc for loc in found if loc.location_id in wanted]
            sensors = [s for s in sensors if s.location_id in wanted]
        batch.locations = found
        if not found:
            batch.failed.setdefault("openaq:discovery", "no OpenAQ location matched")
            return batch
        rows = Rows()
        for sensor in self.plan_hours(sensors, window, rows, batch):
            self._hours(sensor, window, rows, batch)
        frame = rows.frame()
        if not frame.empty:
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        batch.observations = frame
        return batch

    def plan_hours(
        self, sensors: list[Sensor], window: Window, rows: Rows, batch: Batch
    ) -> list[Sensor]:
        """The sensors whose /hours this run reads: all of them for a backfill, or when they
        fit in the run's budget; else every sensor's latest value and a rotating slice."""
        left = self.settings.openaq_requests_per_run - self.requests
        if not window.live or len(sensors) <= left:
            return sensors
        for parameter_id in sorted({s.parameter_id for s in sensors}):
            self._latest(parameter_id, sensors, window, rows, batch)
        left = max(self.settings.openaq_requests_per_run - self.requests, 0)
        if not left:
            return []
        ordered = sorted(sensors, key=lambda s: s.id)
        slices = math.ceil(len(ordered) / left)
        k = int(window.as_of.timestamp() // 3600) % slices
        covered = int((window.end - window.start) / HOUR) + 1
        if covered < slices:  # a sensor's late hours between two turns would be missed
            event(
                log,
                "openaq rotation longer than the lookback: late hours can be missed",
                logging.WARNING,
                sensors=len(ordered),
                per_run=left,
                rotation_hours=slices,
                lookback_hours=covered,
                fix=f"AIRCAST_INGEST_LOOKBACK_HOURS>={slices}",
            )
        return ordered[k * left : (k + 1) * left]

    # -- discovery ---------------------------------------------------------------------------
    def queries(self) -> list[dict[str, Any]]:
        """One /locations query per country (or one without), with the other filters."""
        s = self.settings
        if not (s.openaq_bbox or s.openaq_countries or s.openaq_providers):
            raise SourceError(
                "no OpenAQ discovery filter: set AIRCAST_OPENAQ_BBOX, AIRCAST_OPENAQ_COUNTRIES "
                "or AIRCAST_OPENAQ_PROVIDERS"
            )
        base: dict[str, Any] = {
            "parameters_id": ",".join(str(p) for p in PARAMETER_IDS),
            "mobile": "false",
            "order_by": "id",
            "sort_order": "asc",
        }
        if s.openaq_bbox:
            base["bbox"] = s.openaq_bbox
        if s.openaq_providers:
            base["providers_id"] = s.openaq_providers
        if s.openaq_monitors_only:
            base["monitor"] = "true"
        countries = s.openaq_countries.split(",") if s.openaq_countries else [None]
        return [{**base, **({"iso": c} if c else {})} for c in countries]

    def discover(self, batch: Batch) -> tuple[list[Location], list[Sensor]]:
        locations: dict[str, Location] = {}
        sensors: dict[int, Sensor] = {}
        for query in self.queries():
            for item in self._pages("/locations", query, batch, None):
                parsed = self._location(item, batch)
                if parsed is not None:
                    loc, chosen = parsed
                    locations[loc.location_id] = loc
                    sensors.update({s.id: s for s in chosen})
        return list(locations.values()), list(sensors.values())

    def _location(self, item: Any, batch: Batch) -> tuple[Location, list[Sensor]] | None:
        try:
            parsed = _LocationItem.model_validate(item)
        except ValidationError as exc:
            lid = _location_id(item.get("id")) if isinstance(item, dict) else None
            reason = f"malformed OpenAQ location: {validation_message(exc, 'location')[1]}"
            batch.rejected.append(Rejection(lid, None, reason, payload_text(item)))
            return None
        lid = f"{LOCATION_PREFIX}{parsed.id}"
        chosen: dict[str, Sensor] = {}
        for s in parsed.sensors:
            column = COLUMNS.get(s.parameter.name.lower())
            if column is None:
                continue  # a parameter aircast does not store (temperature, pm1, ...)
            f = factor(column, s.parameter.units)
            if f is None:
                reason = f"sensor {s.id}: {s.parameter.name} in {s.parameter.units!r} has no "
                reason += "conversion to µg/m³"
                batch.rejected.append(Rejection(lid, None, reason, payload_text(s.model_dump())))
                continue
            sensor = Sensor(s.id, lid, s.parameter.id, column, unit(s.parameter.units), f)
            if column not in chosen or rank(sensor) < rank(chosen[column]):
                chosen[column] = sensor
        if not chosen:
            return None
        tz = parsed.timezone or "UTC"
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            tz = "UTC"
        name = parsed.name or f"OpenAQ {parsed.id}"
        if parsed.locality and parsed.locality not in name:
            name = f"{name}, {parsed.locality}"
        read = {s.id for s in chosen.values()}
        described = [  # every sensor of a stored pollutant, and whether this source reads it
            {
                "id": s.id,
                "parameter": s.parameter.name,
                "parameter_id": s.parameter.id,
                "units": s.parameter.units,
                "read": s.id in read,
            }
            for s in parsed.sensors
            if s.parameter.name.lower() in COLUMNS
        ]
        loc = Location(
            lid,
            name[:200],
            parsed.coordinates.latitude,
            parsed.coordinates.longitude,
            self.name,
            tz,
            sensors=json.dumps(described, ensure_ascii=False),
        )
        return loc, list(chosen.values())

    # -- values ------------------------------------------------------------------------------
    def _hours(self, sensor: Sensor, window: Window, rows: Rows, batch: Batch) -> None:
        params = {
            # The server keeps hours whose end t has datetime_from < t <= datetime_to.
            "datetime_from": iso(window.start),
            "datetime_to": iso(window.end + HOUR),
        }
        try:
            items = list(self._pages(f"/sensors/{sensor.id}/hours", params, batch, sensor))
        except SourceError as exc:
            batch.failed[sensor.location_id] = f"sensor {sensor.id}: {self._clean(exc)}"
            return
        for item in items:
            try:
                hour = _Hour.model_validate(item)
            except ValidationError as exc:
                reason = f"malformed OpenAQ hour: {validation_message(exc, 'hour')[1]}"
                batch.rejected.append(
                    Rejection(sensor.location_id, None, reason, payload_text(item))
                )
                continue
            if hour.parameter is not None and unit(hour.parameter.units) != sensor.units:
                reason = f"sensor {sensor.id}: unit {hour.parameter.units!r}, "
                reason += f"expected {sensor.units!r}"
                batch.rejected.append(
                    Rejection(sensor.location_id, None, reason, payload_text(item))
                )
                continue
            self._value(sensor, hour.period.datetimeFrom.utc, hour.value, item, rows, batch)

    def _latest(
        self,
        parameter_id: int,
        sensors: list[Sensor],
        window: Window,
        rows: Rows,
        batch: Batch,
    ) -> None:
        """Every sensor's newest value for one parameter; only hourly values are kept (the
        reading's end on the hour: its hour started an hour before)."""
        ours = {s.id: s for s in sensors if s.parameter_id == parameter_id}
        params = {"datetime_min": iso(window.start)}
        path = f"/parameters/{parameter_id}/latest"
        try:
            items = list(self._pages(path, params, batch, None))
        except SourceError as exc:
            batch.failed[f"openaq:parameter {parameter_id}"] = self._clean(exc)
            return
        for item in items:
            try:
                latest = _Latest.model_validate(item)
            except ValidationError as exc:
                reason = f"malformed OpenAQ latest value: {validation_message(exc, 'value')[1]}"
                batch.rejected.append(Rejection(None, None, reason, payload_text(item)))
                continue
            sensor = ours.get(latest.sensorsId)
            if sensor is None:
                continue  # a sensor elsewhere in the world
            end = _utc(latest.datetime.utc)
            if end is None or end != floor_hour(end):
                continue  # not an hourly value; the sensor's /hours turn brings the mean
            self._value(sensor, iso(end - HOUR), latest.value, item, rows, batch)

    def _value(
        self,
        sensor: Sensor,
        start: str,
        value: float | None,
        item: Any,
        rows: Rows,
        batch: Batch,
    ) -> None:
        ts = _utc(start)  # one value at a time: fromisoformat, not pandas' format guessing
        if ts is None:
            reason = f"sensor {sensor.id}: unparseable time {start!r}"
            batch.rejected.append(Rejection(sensor.location_id, None, reason, payload_text(item)))
            return
        if value is None:
            return  # an hour whose every reading was an error: no value
        v = VARIABLES[sensor.column]
        converted = value * sensor.factor
        if not (v.low <= converted <= v.high):
            reason = (
                f"{sensor.column}={converted:g} outside physical range [{v.low:g}, {v.high:g}] "
                f"{v.unit} (sensor {sensor.id}: {value:g} {sensor.units})"
            )
            batch.rejected.append(Rejection(sensor.location_id, ts, reason, payload_text(item)))
            return
        rows.put(sensor, ts, converted, item)

    # -- HTTP --------------------------------------------------------------------------------
    def _pages(
        self, path: str, params: dict[str, Any], batch: Batch, sensor: Sensor | None
    ) -> Iterator[Any]:
        """The results of every page, until a page shorter than the limit."""
        lid = sensor.location_id if sensor else None
        for page in range(1, MAX_PAGES + 1):
            body = self._get(path, {**params, "limit": PAGE_LIMIT, "page": page}, batch, lid)
            try:
                parsed = _Page.model_validate(body)
            except ValidationError as exc:
                reason = f"malformed OpenAQ answer: {validation_message(exc, 'response')[1]}"
                batch.rejected.append(Rejection(lid, None, reason, payload_text(body)))
                raise SourceError(reason) from None
            yield from parsed.results
            if len(parsed.results) < PAGE_LIMIT:
                return
        raise SourceError(f"{path}: more than {MAX_PAGES} pages; stopped")

    def _get(self, path: str, params: dict[str, Any], batch: Batch, lid: str | None) -> Any:
        self.requests += 1
        resp = get(
            self.session,
            f"{self.base}{path}",
            params,
            self.settings.http_timeout_seconds,
            secrets=[self.key],
            pacer=self.pacer,
        )
        try:
            body = resp.json()
        except ValueError:
            if resp.status_code != 200:  # an error page, not data: nothing to quarantine
                raise SourceError(f"OpenAQ {path}: HTTP {resp.status_code}") from None
            batch.rejected.append(
                Rejection(lid, None, "malformed JSON", payload_text(resp.text[:5000]))
            )
            raise SourceError(f"malformed JSON from OpenAQ {path}") from None
        if resp.status_code != 200:
            detail = body.get("detail") or body.get("message") if isinstance(body, dict) else body
            raise SourceError(f"OpenAQ {path}: HTTP {resp.status_code}: {str(detail)[:300]}")
        return body

    def _clean(self, exc: Exception) -> str:
        return redact(str(exc), [self.key])


def _location_id(openaq_id: Any) -> str | None:
    return f"{LOCATION_PREFIX}{openaq_id}" if isinstance(openaq_id, int) else None


def _utc(text: str) -> dt.datetime | None:
    try:
        return parse_time(text)
    except ValueError:
        return None
