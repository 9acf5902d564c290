"""A local OpenAQ API v3 that answers in the documented shapes (../shared/reference/openaq.md).

It keeps the documented behaviour a client can trip on: the X-API-Key header (401 without
it), pages of `limit` rows with `meta.found` a string (">1000") on a full page, `/hours`
filtered on the end of each hour with `datetime_from < t <= datetime_to` and a time without
an offset read as the station's local time, `/parameters/{id}/latest` with `datetime_min`,
and the x-ratelimit-* headers. Tests script faults (429, malformed bodies) on top.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response

HOUR = dt.timedelta(hours=1)
PARAMETERS = {  # id -> (name, units), the seed table's ids
    2: ("pm25", "µg/m³"),
    1: ("pm10", "µg/m³"),
    7: ("no2", "ppm"),
    15: ("no2", "ppb"),
    5: ("no2", "µg/m³"),
    10: ("o3", "ppm"),
    32: ("o3", "ppb"),
    8: ("co", "ppm"),
    9: ("so2", "ppm"),
    19: ("pm1", "µg/m³"),
}


def z(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def both(t: dt.datetime, tz: str) -> dict[str, str]:
    return {"utc": z(t), "local": t.astimezone(zoneinfo.ZoneInfo(tz)).isoformat()}


def location(
    lid: int,
    sensors: list[tuple[int, int]],
    *,
    tz: str = "America/Denver",
    country: str = "US",
    provider: int = 119,
    lat: float = 35.1353,
    lon: float = -106.584702,
) -> dict[str, Any]:
    """A /locations item; `sensors` are (sensor id, parameter id)."""
    return {
        "id": lid,
        "name": f"Station {lid}",
        "locality": "Albuquerque",
        "timezone": tz,
        "country": {"id": 155, "code": country, "name": "United States"},
        "owner": {"id": 4, "name": "Unknown Governmental Organization"},
        "provider": {"id": provider, "name": "AirNow"},
        "isMobile": False,
        "isMonitor": True,
        "instruments": [{"id": 2, "name": "Government Monitor"}],
        "sensors": [
            {
                "id": sid,
                "name": f"{PARAMETERS[pid][0]} {PARAMETERS[pid][1]}",
                "parameter": {
                    "id": pid,
                    "name": PARAMETERS[pid][0],
                    "units": PARAMETERS[pid][1],
                    "displayName": PARAMETERS[pid][0].upper(),
                },
            }
            for sid, pid in sensors
        ],
        "coordinates": {"latitude": lat, "longitude": lon},
        "licenses": [],
        "bounds": [lon, lat, lon, lat],
        "distance": None,
        "datetimeFirst": {"utc": "2016-03-06T20:00:00Z", "local": "2016-03-06T13:00:00-07:00"},
        "datetimeLast": {"utc": "2024-09-25T22:00:00Z", "local": "2024-09-25T16:00:00-06:00"},
    }


def hour_item(start: dt.datetime, value: float | None, pid: int, tz: str) -> dict[str, Any]:
    """A /sensors/{id}/hours item: the hour [start, start + 1 h), labelled by its end."""
    name, units = PARAMETERS[pid]
    end = start + HOUR
    return {
        "period": {
            "label": "1hour",
            "interval": "01:00:00",
            "datetimeFrom": both(start, tz),
            "datetimeTo": both(end, tz),
        },
        "value": value,
        "flagInfo": {"hasFlags": False},
        "parameter": {"id": pid, "name": name, "units": units, "displayName": None},
        "coordinates": None,
        "summary": {
            "min": value,
            "q02": value,
            "q25": value,
            "median": value,
            "q75": value,
            "q98": value,
            "max": value,
            "sd": None,
        },
        "coverage": {
            "expectedCount": 1,
            "expectedInterval": "01:00:00",
            "observedCount": 1,
            "observedInterval": "01:00:00",
            "percentComplete": 100,
            "percentCoverage": 100,
            "datetimeFrom": both(end, tz),
            "datetimeTo": both(end, tz),
        },
    }


@dataclass
class FakeOpenAQ:
    key: str
    locations: list[dict[str, Any]]
    # sensor id -> {hour start (UTC): value}
    values: dict[int, dict[dt.datetime, float | None]] = field(default_factory=dict)
    # sensor id -> (end of its newest reading, value) for /latest; default: its last hour
    latest: dict[int, tuple[dt.datetime, float]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # path -> bodies or (status, headers, body) answered before the real answer, once each
    faults: dict[str, list[Any]] = field(default_factory=dict)
    # path -> headers added to its next real answers, once each
    extra_headers: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    minute_limit: int = 60
    # sensors elsewhere in the world that /parameters/{id}/latest also lists, per parameter
    world: dict[int, int] = field(default_factory=dict)
    _index: dict[int, tuple[dict[str, Any], int]] = field(default_factory=dict, repr=False)

    def install(self, server: Any) -> None:
        server.expect_request(re.compile(r"^/v3/.*")).respond_with_handler(self.handle)

    def _sensor(self, sid: int) -> tuple[dict[str, Any], int]:
        if len(self._index) != sum(len(loc["sensors"]) for loc in self.locations):
            self._index = {
                s["id"]: (loc, s["parameter"]["id"])
                for loc in self.locations
                for s in loc["sensors"]
            }
        return self._index[sid]

    def _json(self, body: Any, status: int = 200, **headers: str) -> Response:
        used = len(self.requests)
        h = {
            "x-ratelimit-limit": str(self.minute_limit),
            "x-ratelimit-used": str(used),
            "x-ratelimit-remaining": str(max(self.minute_limit - used, 1)),
            "x-ratelimit-reset": "60",
            **headers,
        }
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        return Response(text, status=status, headers=h, content_type="application/json")

    def handle(self, request: Request) -> Response:
        path, args = request.path, dict(request.args)
        self.requests.append((path, args))
        if request.headers.get("X-API-Key") != self.key:
            return self._json({"detail": "Invalid credentials"}, 401)
        if self.faults.get(path):
            fault = self.faults[path].pop(0)
            if isinstance(fault, tuple):
                status, headers, body = fault
                return self._json(body, status, **headers)
            return self._json(fault)
        limit, page = int(args.get("limit", 100)), int(args.get("page", 1))
        if not (0 < limit <= 1000) or page < 1:
            return self._json({"detail": "limit/page out of range"}, 422)
        if path == "/v3/locations":
            rows = self._locations(args)
        elif m := re.fullmatch(r"/v3/sensors/(\d+)/hours", path):
            rows = self._hours(int(m[1]), args)
            if rows is None:
                return self._json({"detail": "Sensor not found"}, 404)
        elif m := re.fullmatch(r"/v3/parameters/(\d+)/latest", path):
            rows = self._latest(int(m[1]), args)
        else:
            return self._json({"detail": "Not Found"}, 404)
        chunk = rows[(page - 1) * limit : page * limit]
        found: Any = f">{limit}" if len(chunk) == limit else len(chunk)
        meta = {"name": "openaq-api", "website": "/", "page": page, "limit": limit, "found": found}
        extra = self.extra_headers[path].pop(0) if self.extra_headers.get(path) else {}
        return self._json({"meta": meta, "results": chunk}, **extra)

    def _locations(self, args: dict[str, str]) -> list[dict[str, Any]]:
        rows = self.locations
        if "iso" in args:
            rows = [r for r in rows if r["country"]["code"] == args["iso"]]
        if "providers_id" in args:
            ids = {int(i) for i in args["providers_id"].split(",")}
            rows = [r for r in rows if r["provider"]["id"] in ids]
        if "bbox" in args:
            lon0, lat0, lon1, lat1 = (float(v) for v in args["bbox"].split(","))
            rows = [
                r
                for r in rows
                if lon0 <= r["coordinates"]["longitude"] <= lon1
                and lat0 <= r["coordinates"]["latitude"] <= lat1
            ]
        if "parameters_id" in args:
            ids = {int(i) for i in args["parameters_id"].split(",")}
            rows = [r for r in rows if ids & {s["parameter"]["id"] for s in r["sensors"]}]
        return sorted(rows, key=lambda r: r["id"])

    def _time(self, text: str, tz: str) -> dt.datetime:
        """As the server reads it: a time without an offset is the station's local time."""
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return t if t.tzinfo else t.replace(tzinfo=zoneinfo.ZoneInfo(tz))

    def _hours(self, sid: int, args: dict[str, str]) -> list[dict[str, Any]] | None:
        try:
            loc, pid = self._sensor(sid)
        except KeyError:
            return None
        tz = loc["timezone"]
        lo = self._time(args["datetime_from"], tz) if "datetime_from" in args else None
        hi = self._time(args["datetime_to"], tz) if "datetime_to" in args else None
        out = []
        for start, value in sorted(self.values.get(sid, {}).items()):
            end = start + HOUR  # the server filters on the end of the hour
            if (lo is None or end > lo) and (hi is None or end <= hi):
                out.append(hour_item(start, value, pid, tz))
        return out

    def _latest(self, pid: int, args: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        for loc in self.locations:
            for s in loc["sensors"]:
                if s["parameter"]["id"] != pid:
                    continue
                sid = s["id"]
                if sid in self.latest:
                    end, value = self.latest[sid]
                elif self.values.get(sid):
                    start = max(self.values[sid])
                    end, value = start + HOUR, self.values[sid][start]  # type: ignore[assignment]
                else:
                    continue
                if "datetime_min" in args and end <= self._time(
                    args["datetime_min"], loc["timezone"]
                ):
                    continue
                out.append(
                    {
                        "datetime": both(end, loc["timezone"]),
                        "value": value,
                        "coordinates": loc["coordinates"],
                        "sensorsId": sid,
                        "locationsId": loc["id"],
                    }
                )
        stamp = {"utc": "2024-03-01T11:00:00Z", "local": "2024-03-01T11:00:00+00:00"}
        for n in range(self.world.get(pid, 0)):  # not ours: the client skips them
            out.append(
                {
                    "datetime": stamp,
                    "value": 1.0,
                    "coordinates": {"latitude": 0.0, "longitude": 0.0},
                    "sensorsId": 10**8 + n,
                    "locationsId": 10**8 + n,
                }
            )
        return out
