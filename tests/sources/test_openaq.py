"""The OpenAQ source against a local server serving the documented API v3 shapes
(tests/sources/openaq_fake.py): discovery, paging, units, rate limits, station-local times,
quarantine, the key kept secret, idempotent re-runs, and the CLI's backfill + hourly ingest.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from common.core.config import load_settings
from common.core.errors import RunFailed
from common.core.logs import JsonFormatter
from common.ingest.job import IngestRequest, run_ingest
from common.ops.cli import main
from common.runtime.services import Services
from common.sources import openaq
from common.sources.http import Pacer
from common.storage import open_store
from common.warehouse import open_warehouse
from tests.sources.openaq_fake import FakeOpenAQ, location

KEY = "oaq-s3cret-key-0123456789"
AS_OF = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
FAST = {"openaq_requests_per_minute": 100_000, "openaq_requests_per_hour": 100_000}


def hours(first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    out, t = [], first
    while t <= last:
        out.append(t)
        t += HOUR
    return out


def network() -> FakeOpenAQ:
    """Two countries, one provider each; Denver's station has NO2 in ppm and in µg/m³, CO in
    ppm, O3 in ppb and PM1 (not stored); London has O3 in ppm."""
    locations = [
        location(2178, [(3916, 7), (3920, 2), (3921, 5), (3922, 19), (3923, 8), (3924, 32)]),
        location(2179, [(3930, 2)], lat=35.2),
        location(2180, [(3940, 2)], lat=35.3),
        location(2181, [(3950, 2)], lat=35.4),
        location(
            3000,
            [(4001, 2), (4002, 10)],
            tz="Europe/London",
            country="GB",
            provider=50,
            lat=51.5,
            lon=-0.12,
        ),
    ]
    span = hours(dt.datetime(2024, 2, 29, 0, tzinfo=dt.UTC), AS_OF - HOUR)
    per_sensor = {
        3916: 0.021,  # ppm: never read, the µg/m³ sensor of NO2 is preferred
        3920: 12.5,
        3921: 40.0,
        3922: 3.0,
        3923: 0.5,  # CO ppm
        3924: 30.0,  # O3 ppb
        3930: 8.0,
        3940: 9.0,
        3950: 10.0,
        4001: 6.0,
        4002: 0.03,  # O3 ppm
    }
    values = {sid: dict.fromkeys(span, v) for sid, v in per_sensor.items()}
    return FakeOpenAQ(KEY, locations, values)


def make_services(tmp_path, server, **extra) -> Services:
    settings = load_settings(
        home=tmp_path / "home",
        openaq_url=server.url_for("/v3"),
        http_retries=2,
        http_timeout_seconds=5,
        **{"openaq_api_key": KEY, "openaq_countries": "US,GB", **FAST, **extra},
    )
    return Services(settings, open_warehouse(settings), open_store(settings))


def rows(svc: Services, sql: str) -> list[dict]:
    return svc.warehouse.query(sql).to_dict("records")


@pytest.fixture(autouse=True)
def _fresh_pacers(monkeypatch):
    monkeypatch.setattr(openaq, "_PACERS", {})


def backfill(svc: Services, start: dt.datetime, end: dt.datetime, **fields) -> dict:
    request = IngestRequest(as_of=AS_OF, start=start, end=end, source="openaq", **fields)
    return run_ingest(request, svc)


def test_discovery_paging_units_and_station_local_windows(tmp_path, httpserver, monkeypatch):
    monkeypatch.setattr(openaq, "PAGE_LIMIT", 2)  # 4 US locations: pages of 2, 2, then 0
    fake = network()
    fake.install(httpserver)
    svc = make_services(tmp_path, httpserver)
    start, end = (
        dt.datetime(2024, 3, 1, 0, tzinfo=dt.UTC),
        dt.datetime(2024, 3, 1, 5, tzinfo=dt.UTC),
    )
    result = backfill(svc, start, end)
    assert result["status"] == "success", result

    located = [(p, a) for p, a in fake.requests if p == "/v3/locations"]
    assert [(a["iso"], a["page"]) for _, a in located] == [
        ("US", "1"), ("US", "2"), ("US", "3"), ("GB", "1")
    ]  # fmt: skip
    assert all(a["mobile"] == "false" and "2" in a["parameters_id"].split(",") for _, a in located)
    sensors_read = sorted(p for p, _ in fake.requests if p.startswith("/v3/sensors/"))
    assert "/v3/sensors/3916/hours" not in sensors_read  # NO2 in µg/m³ is read instead of ppm
    assert "/v3/sensors/3922/hours" not in sensors_read  # PM1 is not stored
    for p, a in fake.requests:
        if p.startswith("/v3/sensors/"):  # always sent in UTC: a bare time is station-local
            assert (a["datetime_from"], a["datetime_to"]) == (
                "2024-03-01T00:00:00Z",
                "2024-03-01T06:00:00Z",
            )

    places = {r["location_id"]: r for r in rows(svc, "SELECT * FROM current_locations")}
    assert sorted(places) == [
        "openaq-2178", "openaq-2179", "openaq-2180", "openaq-2181", "openaq-3000"
    ]  # fmt: skip
    denver = places["openaq-2178"]
    assert denver["timezone"] == "America/Denver" and denver["source"] == "openaq"
    assert denver["name"] == "Station 2178, Albuquerque"
    assert (denver["latitude"], denver["longitude"]) == (35.1353, -106.584702)
    sensors = {s["id"]: s for s in json.loads(denver["sensors"])}  # each sensor, with its unit
    assert sorted(sensors) == [3916, 3920, 3921, 3923, 3924]  # PM1 (3922) is not stored
    assert sensors[3916] == {
        "id": 3916, "parameter": "no2", "parameter_id": 7, "units": "ppm", "read": False
    }  # fmt: skip
    assert sensors[3921]["read"] and sensors[3921]["units"] == "µg/m³"
    assert rows(svc, "SELECT DISTINCT provenance FROM observations_raw") == [
        {"provenance": "measurement"}
    ]

    obs = svc.warehouse.query("SELECT * FROM observations ORDER BY location_id, ts")
    assert set(obs["ts"]) == set(hours(start, end))  # no hour shifted by a local offset
    assert obs.groupby("location_id").size().to_dict() == dict.fromkeys(places, 6)
    d = obs[obs["location_id"] == "openaq-2178"].iloc[0]
    assert d["pm2_5"] == 12.5 and d["nitrogen_dioxide"] == 40.0
    assert d["carbon_monoxide"] == pytest.approx(0.5 * 1000 * 28.0101 / 24.4654, rel=1e-4)
    assert d["ozone"] == pytest.approx(30 * 47.9982 / 24.4654, rel=1e-4)  # 58.86
    london = obs[obs["location_id"] == "openaq-3000"].iloc[0]
    assert london["ozone"] == pytest.approx(d["ozone"], rel=1e-9)  # 0.03 ppm = 30 ppb
    assert rows(svc, "SELECT COUNT(*) AS n FROM rejected_rows") == [{"n": 0}]


def test_a_rerun_writes_nothing_and_the_views_hold_no_duplicates(tmp_path, httpserver):
    network().install(httpserver)
    svc = make_services(tmp_path, httpserver)
    start, end = AS_OF - 30 * HOUR, AS_OF - HOUR
    first = backfill(svc, start, end)
    again = backfill(svc, start, end)
    assert first["counts"]["written"] == 5 * 30
    assert again["counts"]["written"] == 0
    assert again["counts"]["unchanged"] == first["counts"]["accepted"]
    assert again["counts"]["locations_registered"] == 0
    assert rows(svc, "SELECT COUNT(*) AS n FROM observations_raw") == [{"n": 150}]
    (view,) = rows(
        svc,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT location_id || CAST(ts AS VARCHAR)) AS keys "
        "FROM observations",
    )
    assert view == {"n": 150, "keys": 150}
    assert rows(svc, "SELECT COUNT(*) AS n FROM current_locations") == [{"n": 5}]


def test_a_429_is_waited_out_and_an_empty_window_pauses_the_client(tmp_path, httpserver):
    fake = network()
    fake.faults["/v3/locations"] = [
        (429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}, {"message": "Too many"})
    ]
    fake.install(httpserver)
    svc = make_services(tmp_path, httpserver, openaq_countries="GB")
    pauses: list[float] = []
    budget = (KEY, FAST["openaq_requests_per_minute"], FAST["openaq_requests_per_hour"])
    openaq._PACERS[budget] = Pacer(*budget[1:], sleep=pauses.append)
    fake.extra_headers["/v3/sensors/4001/hours"] = [
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "7"}  # the minute's last request
    ]
    began = time.monotonic()
    result = backfill(svc, AS_OF - 3 * HOUR, AS_OF - HOUR)
    assert time.monotonic() - began >= 1.0  # the 429's x-ratelimit-reset, not a blind retry
    assert result["status"] == "success" and result["counts"]["written"] == 3
    statuses = [p for p, _ in fake.requests]
    assert statuses[:2] == ["/v3/locations", "/v3/locations"]  # the 429, then its retry
    assert pauses == [7.0]  # none left in the window: the pacer waited out its reset
    assert openaq._PACERS[budget].requests == 3  # the pacer counted each request once


def test_malformed_answers_and_absurd_values_are_quarantined_without_the_key(tmp_path, httpserver):
    fake = network()
    start, end = AS_OF - 3 * HOUR, AS_OF - HOUR
    fake.values[3923][start] = -999.0  # CO sentinel: quarantined alone
    fake.faults["/v3/sensors/4001/hours"] = ['{"meta": {"page": 1}, "results": [1, 2']
    fake.faults["/v3/sensors/3930/hours"] = [
        {"meta": {"found": 2}, "results": [{"value": 3.0}, {"period": "x", "value": 2}]}
    ]
    fake.install(httpserver)
    svc = make_services(tmp_path, httpserver)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("aircast")
    logger.addHandler(handler)
    try:
        result = backfill(svc, start, end)
    finally:
        logger.removeHandler(handler)
    assert result["status"] == "partial"
    assert result["failed_locations"] == [
        {"location_id": "openaq-3000", "error": "sensor 4001: malformed JSON from OpenAQ "
         "/sensors/4001/hours"}
    ]  # fmt: skip
    reasons = sorted(r["reason"] for r in rows(svc, "SELECT reason FROM rejected_rows"))
    assert reasons[0].startswith("carbon_monoxide=-1.1")
    assert reasons[0].endswith("outside physical range [0, 60000] µg/m³ (sensor 3923: -999 ppm)")
    assert reasons[1:] == [
        "malformed JSON",
        "malformed OpenAQ hour: period: Field required",
        "malformed OpenAQ hour: period: Input should be a valid dictionary or instance of _Period",
    ]
    denver = svc.warehouse.query(
        "SELECT * FROM observations WHERE location_id = 'openaq-2178' ORDER BY ts"
    )
    first = denver.iloc[0]
    assert first["ts"] == start and first["pm2_5"] == 12.5  # the hour still lands
    assert pd.isna(first["carbon_monoxide"]) and first["nitrogen_dioxide"] == 40.0
    assert len(denver) == 3
    for part in (stream.getvalue(), json.dumps(result, default=str)):
        assert KEY not in part
    for table in ("runs", "rejected_rows", "observations_raw", "locations"):
        assert KEY not in json.dumps(rows(svc, f"SELECT * FROM {table}"), default=str), table
    assert KEY not in repr(svc.settings)
    assert all(
        r.headers.get("X-API-Key") == KEY and KEY not in r.url for r, _ in httpserver.log
    )  # the key travels in the header only


def test_without_a_key_or_a_discovery_filter_the_run_fails_clearly(tmp_path, httpserver):
    network().install(httpserver)
    svc = make_services(tmp_path, httpserver, openaq_api_key=None)
    with pytest.raises(RunFailed) as info:
        backfill(svc, AS_OF - 3 * HOUR, AS_OF - HOUR)
    assert "AIRCAST_OPENAQ_API_KEY is not set" in info.value.result["error"]
    svc = make_services(tmp_path / "b", httpserver, openaq_countries=None)
    with pytest.raises(RunFailed) as info:
        backfill(svc, AS_OF - 3 * HOUR, AS_OF - HOUR)
    assert "AIRCAST_OPENAQ_BBOX" in info.value.result["error"]
    svc = make_services(tmp_path / "c", httpserver, openaq_api_key="wrong")
    with pytest.raises(RunFailed) as info:
        backfill(svc, AS_OF - 3 * HOUR, AS_OF - HOUR)
    assert "HTTP 401: Invalid credentials" in info.value.result["error"]
    assert "wrong" not in info.value.result["error"]


def test_a_scheduled_run_over_budget_reads_latest_values_and_a_rotating_slice(
    tmp_path, httpserver, caplog
):
    fake = network()
    # London's PM2.5 last read at 11:40: not an hourly value, left for its /hours turn.
    fake.latest[4001] = (AS_OF - dt.timedelta(minutes=20), 7.0)
    fake.install(httpserver)
    # 9 sensors; budget 8 = 2 discovery + 5 parameters' latest + a slice of 1 sensor
    svc = make_services(tmp_path, httpserver, openaq_requests_per_run=8)
    with caplog.at_level(logging.WARNING, logger="aircast.sources.openaq"):
        result = run_ingest(IngestRequest(as_of=AS_OF, source="openaq"), svc)
    (warned,) = [r for r in caplog.records if "rotation longer than the lookback" in r.message]
    assert warned.fields["rotation_hours"] == 9 and warned.fields["lookback_hours"] == 7
    assert result["status"] == "success", result
    paths = [p for p, _ in fake.requests]
    assert len(paths) == 8
    latest = sorted(p for p in paths if p.endswith("/latest"))
    assert latest == [f"/v3/parameters/{i}/latest" for i in (10, 2, 32, 5, 8)]
    (sliced,) = [p for p in paths if p.startswith("/v3/sensors/")]
    for p, a in fake.requests:
        if p.endswith("/latest"):
            assert a["datetime_min"] == "2024-03-01T06:00:00Z"  # the 6-hour lookback, in UTC
    obs = svc.warehouse.query("SELECT * FROM observations ORDER BY location_id, ts")
    newest = obs[obs["ts"] == AS_OF - HOUR]
    assert set(newest["location_id"]) == {f"openaq-{i}" for i in (2178, 2179, 2180, 2181, 3000)}
    london = newest[newest["location_id"] == "openaq-3000"].iloc[0]
    assert pd.isna(london["pm2_5"]) or sliced == "/v3/sensors/4001/hours"
    # The slice's sensor brought its whole window (6 hours before as_of, and as_of's own).
    sid = int(sliced.split("/")[3])
    column = {3920: "pm2_5", 3921: "nitrogen_dioxide", 3923: "carbon_monoxide",
              3924: "ozone", 3930: "pm2_5", 3940: "pm2_5", 3950: "pm2_5", 4001: "pm2_5",
              4002: "ozone"}[sid]  # fmt: skip
    owner = {3920: 2178, 3921: 2178, 3923: 2178, 3924: 2178, 3930: 2179, 3940: 2180,
             3950: 2181, 4001: 3000, 4002: 3000}[sid]  # fmt: skip
    mine = obs[(obs["location_id"] == f"openaq-{owner}") & obs[column].notna()]
    assert len(mine) == 6  # 06:00..11:00 (12:00 has not ended yet)


def test_cli_backfill_then_the_hourly_ingest_then_a_rerun(tmp_path, httpserver, monkeypatch):
    network().install(httpserver)
    env = {
        "AIRCAST_HOME": str(tmp_path / "home"),
        "AIRCAST_BACKEND": "local",
        "AIRCAST_OPENAQ_URL": httpserver.url_for("/v3"),
        "AIRCAST_OPENAQ_API_KEY": KEY,
        "AIRCAST_OPENAQ_BBOX": "-110,30,0,60",
        "AIRCAST_OPENAQ_REQUESTS_PER_MINUTE": "100000",
        "AIRCAST_OPENAQ_REQUESTS_PER_HOUR": "100000",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    def cli(*args: str) -> str:
        out = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert out.exit_code == 0, out.output
        return out.stdout

    out = cli(
        "backfill", "--source", "openaq", "--start", "2024-02-29T00:00Z",
        "--end", "2024-03-01T05:00Z", "--chunk-days", "1",
    )  # fmt: skip
    assert "written=150" in out and "locations_registered=5" in out, out
    hourly = json.loads(cli("ingest", "--source", "openaq", "--as-of", "2024-03-01T12:00Z"))
    assert hourly["counts"]["written"] == 5 * 6  # 06:00..11:00; 00:00..05:00 were backfilled
    again = json.loads(cli("ingest", "--source", "openaq", "--as-of", "2024-03-01T12:00Z"))
    assert again["counts"]["written"] == 0 and again["counts"]["unchanged"] == 5 * 7 - 5
    counts = json.loads(cli("sql", "--json", "SELECT COUNT(*) AS n FROM observations_raw"))
    assert counts == [{"n": 150 + 5 * 6}]
    view = json.loads(
        cli(
            "sql", "--json",
            "SELECT COUNT(*) AS n, COUNT(DISTINCT location_id || CAST(ts AS VARCHAR)) AS k "
            "FROM observations",
        )
    )  # fmt: skip
    assert view == [{"n": 180, "k": 180}]
