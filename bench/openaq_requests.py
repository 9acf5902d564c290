"""Requests the OpenAQ source makes at scale, counted by a local OpenAQ API v3
(tests/sources/openaq_fake.py) serving N locations with S sensors each.

Two runs on a fresh DuckDB home, with the default budget settings except the per-minute
and per-hour pace (raised so the count takes seconds, not hours; the count is what the
defaults would send):

1. a backfill chunk (`aircast backfill`'s unit: one ingest run over start..end; one
   /hours page per sensor for any chunk of up to 41 days),
2. the scheduled hourly ingest at as_of (AIRCAST_OPENAQ_REQUESTS_PER_RUN, default 480).

    .venv/bin/python bench/openaq_requests.py --runs hourly         # 10,000 x 3 sensors
    .venv/bin/python bench/openaq_requests.py --locations 1000      # and a backfill chunk
    .venv/bin/python bench/openaq_requests.py --runs hourly --world 20000

--world W adds W sensors elsewhere to each parameter's /latest answer (OpenAQ lists every
sensor of a parameter worldwide there), which costs ceil(W / 1000) pages more.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import math
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.sources.openaq_fake import FakeOpenAQ, location  # noqa: E402

HOUR = dt.timedelta(hours=1)
AS_OF = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
SENSOR_KINDS = ((2, 12.0), (7, 0.02), (10, 0.03))  # PM2.5 µg/m³, NO2 ppm, O3 ppm (AirNow-like)


def network(n: int, per_location: int, hours: list[dt.datetime], world: int) -> FakeOpenAQ:
    locations: list[dict] = []
    values: dict[int, dict[dt.datetime, float | None]] = {}
    for i in range(n):
        sensors = []
        for k, (pid, value) in enumerate(SENSOR_KINDS[:per_location]):
            sid = 1_000_000 + i * 10 + k
            sensors.append((sid, pid))
            values[sid] = dict.fromkeys(hours, value)
        lat, lon = 25 + (i % 200) * 0.1, -120 + (i // 200) * 0.5
        locations.append(location(10_000 + i, sensors, lat=lat, lon=lon, tz="America/Denver"))
    fake = FakeOpenAQ("bench-key", locations, values)
    fake.world = {pid: world for pid, _ in SENSOR_KINDS[:per_location]}
    return fake


def kind(path: str) -> str:
    if path == "/v3/locations":
        return "discovery"
    return "latest" if path.endswith("/latest") else "hours"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locations", type=int, default=10_000)
    parser.add_argument("--sensors", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--world", type=int, default=0)
    parser.add_argument("--backfill-hours", type=int, default=24)
    parser.add_argument("--runs", default="backfill_chunk,hourly", help="Comma-separated.")
    args = parser.parse_args()

    import logging

    from pytest_httpserver import HTTPServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    lookback = 72
    span = [AS_OF - h * HOUR for h in range(lookback + args.backfill_hours, 0, -1)]
    fake = network(args.locations, args.sensors, span, args.world)
    server = HTTPServer()
    server.start()
    fake.install(server)
    home = tempfile.mkdtemp(prefix="openaq-bench-")
    os.environ.update(
        AIRCAST_HOME=home,
        AIRCAST_BACKEND="local",
        AIRCAST_LOG_LEVEL="WARNING",
        AIRCAST_OPENAQ_URL=server.url_for("/v3"),
        AIRCAST_OPENAQ_API_KEY="bench-key",
        AIRCAST_OPENAQ_BBOX="-180,-90,180,90",
        AIRCAST_OPENAQ_REQUESTS_PER_MINUTE="1000000",
        AIRCAST_OPENAQ_REQUESTS_PER_HOUR="10000000",
        AIRCAST_INGEST_LOOKBACK_HOURS=str(lookback),
    )
    from common.core.config import load_settings
    from common.ingest.job import IngestRequest, run_ingest
    from common.runtime.services import get_services

    services = get_services()
    budget = load_settings().openaq_requests_per_run
    out: dict = {"locations": args.locations, "sensors_per_location": args.sensors}
    out["world_sensors_per_parameter"] = args.world
    start = AS_OF - (lookback + args.backfill_hours) * HOUR
    runs = {
        "backfill_chunk": IngestRequest(
            as_of=AS_OF, start=start, end=start + (args.backfill_hours - 1) * HOUR, source="openaq"
        ),
        "hourly": IngestRequest(as_of=AS_OF, source="openaq"),
    }
    for name, request in runs.items():
        if name not in args.runs.split(","):
            continue
        before = len(fake.requests)
        result = run_ingest(request, services)
        made = collections.Counter(kind(p) for p, _ in fake.requests[before:])
        out[name] = {
            "requests": sum(made.values()),
            **dict(sorted(made.items())),
            "status": result["status"],
            "written": result["counts"]["written"],
            "locations_registered": result["counts"]["locations_registered"],
        }
    if "hourly" in out:
        sensors = args.locations * args.sensors
        slice_ = out["hourly"].get("hours", 0)
        out["hourly"]["budget"] = budget
        out["hourly"]["rotation_hours"] = math.ceil(sensors / slice_) if slice_ else None
    server.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
