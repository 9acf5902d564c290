"""Each public-API source against a local HTTP server serving the documented shapes
(see ../shared/reference): retries on 429 (Retry-After) and 5xx, timeouts, malformed
JSON, missing fields, absurd values, duplicated and out-of-order timestamps."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import time

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from common import services
from common.config import load_settings
from common.errors import RunFailed
from common.jobs.ingest import IngestRequest, run_ingest
from common.logs import JsonFormatter
from common.services import Services
from common.storage import open_store
from common.warehouse import open_warehouse

AS_OF = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
HOURS = [f"2024-03-01T{h:02d}:00" for h in range(0, 24)]
TOKEN = "s3cret-token-value"


def make_services(tmp_path, server: HTTPServer, **extra) -> Services:
    base = server.url_for("")
    settings = load_settings(
        home=tmp_path / "home",
        open_meteo_url=f"{base}v1/forecast",
        open_meteo_archive_url=f"{base}v1/archive",
        open_meteo_air_url=f"{base}v1/air-quality",
        data_gov_sg_url=f"{base}v2/real-time/api/pm25",
        aqicn_url=base,
        http_retries=2,
        http_timeout_seconds=2,
        **extra,
    )
    return Services(settings, open_warehouse(settings), open_store(settings))


def locations_file(tmp_path, *ids: str, source: str = "open-meteo"):
    path = tmp_path / "locations.toml"
    path.write_text(
        "".join(
            f'[[location]]\nid = "{i}"\nname = "{i}"\nlatitude = {1 + n}.5\nlongitude = 103.8\n'
            f'source = "{source}"\ntimezone = "Asia/Singapore"\n'
            for n, i in enumerate(ids)
        )
    )
    return path


def om_item(values: dict[str, list], n: int = 0, units: dict | None = None) -> dict:
    item = {
        "latitude": 1.5 + n,
        "longitude": 103.75,
        "generationtime_ms": 0.4,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "hourly_units": {"time": "iso8601", **(units or {k: _UNITS[k] for k in values})},
        "hourly": {"time": HOURS[: len(next(iter(values.values())))], **values},
    }
    if n:
        item["location_id"] = n
    return item


_UNITS = {"pm2_5": "μg/m³", "pm10": "μg/m³", "temperature_2m": "°C", "wind_speed_10m": "km/h"}


def ingest(svc: Services, **fields) -> dict:
    return run_ingest(IngestRequest(as_of=AS_OF, **fields), svc)


def counts(svc: Services, sql: str) -> list:
    return svc.warehouse.query(sql).to_dict("records")


# -- Open-Meteo ---------------------------------------------------------------------------
def test_open_meteo_several_locations_per_request_with_bad_rows_quarantined(tmp_path, httpserver):
    air = [
        om_item({"pm2_5": [10.0, 11.0, None, -3.0, 12.0, 12.0, 9999.0] + [5.0] * 6}),
        om_item({"pm2_5": [20.0] * 13}, n=1),
    ]
    weather = [
        om_item({"temperature_2m": [25.0] * 24, "wind_speed_10m": [7.0] * 24}),
        om_item({"temperature_2m": [26.0] * 24, "wind_speed_10m": [8.0] * 24}, n=1),
    ]
    httpserver.expect_request("/v1/air-quality").respond_with_json(air)
    httpserver.expect_request("/v1/archive").respond_with_json(weather)
    svc = make_services(
        tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a", "sg-b")
    )
    result = ingest(svc, source="open-meteo", start="2024-03-01T00:00Z", end="2024-03-01T12:00Z")
    assert result["status"] == "success" and result["failed_locations"] == []
    req = httpserver.log[0][0]
    assert req.args["latitude"] == "1.5000,2.5000" and "pm2_5" in req.args["hourly"]
    rows = counts(
        svc,
        "SELECT location_id, COUNT(*) AS n, MAX(pm2_5) AS mx FROM observations "
        "GROUP BY 1 ORDER BY 1",
    )
    assert rows == [
        {"location_id": "sg-a", "n": 11, "mx": 12.0},
        {"location_id": "sg-b", "n": 13, "mx": 20.0},
    ]
    reasons = sorted(r["reason"] for r in counts(svc, "SELECT reason FROM rejected_rows"))
    assert reasons == [
        "pm2_5=-3 outside physical range [0, 1500] µg/m³",
        "pm2_5=9999 outside physical range [0, 1500] µg/m³",
    ]
    assert result["counts"]["rejected"] == 2


def test_open_meteo_live_run_keeps_weather_after_as_of_as_forecasts(tmp_path, httpserver):
    httpserver.expect_request("/v1/air-quality").respond_with_json(om_item({"pm2_5": [10.0] * 24}))
    httpserver.expect_request("/v1/archive").respond_with_json(
        om_item({"temperature_2m": [float(h) for h in range(24)], "wind_speed_10m": [5.0] * 24})
    )
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    result = ingest(svc, source="open-meteo")
    assert result["counts"]["weather_forecasts"] == 11  # 13:00 .. 23:00
    fc = counts(svc, "SELECT MIN(ts) AS a, MAX(issued_at) AS i FROM weather_forecasts")[0]
    assert fc["a"].hour == 13 and fc["i"] == AS_OF
    obs = counts(svc, "SELECT MAX(ts) AS b, MIN(ts) AS a FROM observations")[0]
    assert obs["b"] == AS_OF and obs["a"] == AS_OF - dt.timedelta(hours=6)


def test_open_meteo_wrong_units_are_rejected_not_mixed(tmp_path, httpserver):
    httpserver.expect_request("/v1/air-quality").respond_with_json(om_item({"pm2_5": [10.0] * 13}))
    httpserver.expect_request("/v1/archive").respond_with_json(
        om_item({"wind_speed_10m": [5.0] * 13}, units={"wind_speed_10m": "mp/h"})
    )
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    ingest(svc, source="open-meteo")
    assert pd.isna(counts(svc, "SELECT MAX(wind_speed_10m) AS w FROM observations")[0]["w"])
    reasons = [r["reason"] for r in counts(svc, "SELECT reason FROM rejected_rows")]
    assert reasons == ["wind_speed_10m: unit 'mp/h', expected 'km/h'"]


def test_a_429_with_retry_after_is_waited_out_then_retried(tmp_path, httpserver):
    httpserver.expect_ordered_request("/v1/air-quality").respond_with_response(
        Response(
            json.dumps({"error": True, "reason": "Minutely API request limit exceeded."}),
            status=429,
            headers={"Retry-After": "1"},
        )
    )
    httpserver.expect_ordered_request("/v1/air-quality").respond_with_json(
        om_item({"pm2_5": [10.0] * 13})
    )
    httpserver.expect_request("/v1/archive").respond_with_json(
        om_item({"temperature_2m": [20.0] * 13})
    )
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    began = time.monotonic()
    result = ingest(svc, source="open-meteo")
    assert time.monotonic() - began >= 1.0
    assert result["status"] == "success" and result["counts"]["accepted"] == 7


def test_a_persistent_500_fails_the_run_with_a_5xx_and_a_runs_row(tmp_path, httpserver):
    httpserver.expect_request("/v1/air-quality").respond_with_json(
        {"error": True, "reason": "The service is overloaded"}, status=503
    )
    httpserver.expect_request("/v1/archive").respond_with_json({"error": True}, status=500)
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    with pytest.raises(RunFailed) as info:
        ingest(svc, source="open-meteo")
    assert "every location failed" in info.value.result["error"]
    assert len(httpserver.log) == 6  # each endpoint: 1 try + 2 retries
    assert counts(svc, "SELECT status FROM runs") == [{"status": "failed"}]


def test_one_malformed_location_does_not_fail_the_others(tmp_path, httpserver):
    good = om_item({"pm2_5": [10.0] * 13})
    broken = {"latitude": 2.5, "longitude": 103.75, "location_id": 1}  # no "hourly"
    mismatched = om_item({"pm2_5": [1.0] * 13}, n=2)
    mismatched["hourly"]["pm2_5"] = [1.0]  # one value for 13 times
    httpserver.expect_request("/v1/air-quality").respond_with_json([good, broken, mismatched])
    httpserver.expect_request("/v1/archive").respond_with_json(
        [om_item({"temperature_2m": [20.0] * 13}), broken, broken]
    )
    svc = make_services(
        tmp_path, httpserver, locations_file=locations_file(tmp_path, "a", "b", "c")
    )
    result = ingest(svc, source="open-meteo")
    assert result["status"] == "partial"
    failed = {f["location_id"]: f["error"] for f in result["failed_locations"]}
    assert set(failed) == {"b", "c"} and "hourly" in failed["b"]
    assert counts(svc, "SELECT DISTINCT location_id FROM observations") == [{"location_id": "a"}]
    assert len(counts(svc, "SELECT * FROM rejected_rows WHERE location_id = 'b'")) >= 1


def test_malformed_json_is_quarantined(tmp_path, httpserver):
    httpserver.expect_request("/v1/air-quality").respond_with_data(
        "{not json", content_type="application/json"
    )
    httpserver.expect_request("/v1/archive").respond_with_data("<html>oops</html>")
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    with pytest.raises(RunFailed):
        ingest(svc, source="open-meteo")
    rows = counts(svc, "SELECT reason, payload FROM rejected_rows ORDER BY payload")
    assert [r["reason"] for r in rows] == ["malformed JSON", "malformed JSON"]
    assert "{not json" in rows[1]["payload"]


def test_a_timeout_is_a_clear_failure(tmp_path, httpserver):
    def slow(request: Request) -> Response:
        time.sleep(1)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/v1/air-quality").respond_with_handler(slow)
    httpserver.expect_request("/v1/archive").respond_with_handler(slow)
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    svc = Services(
        svc.settings.model_copy(update={"http_retries": 0, "http_timeout_seconds": 0.5}),
        svc.warehouse,
        svc.store,
    )
    with pytest.raises(RunFailed) as info:
        ingest(svc, source="open-meteo")
    assert "no answer within 0.5s" in info.value.result["error"]
    deadline = time.monotonic() + 10  # let the server finish, so no late request leaks out
    while len(httpserver.log) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_no_network_is_one_clear_line(tmp_path):
    from common.localstack import free_port

    port = free_port()
    settings = load_settings(
        home=tmp_path / "h",
        open_meteo_air_url=f"http://127.0.0.1:{port}/x",
        open_meteo_archive_url=f"http://127.0.0.1:{port}/y",
        http_retries=1,
        locations_file=locations_file(tmp_path, "sg-a"),
    )
    svc = Services(settings, open_warehouse(settings), open_store(settings))
    with pytest.raises(RunFailed) as info:
        ingest(svc, source="open-meteo")
    error = info.value.result["error"]
    assert "cannot reach 127.0.0.1" in error and "\n" not in error and len(error) < 400


# -- data.gov.sg ----------------------------------------------------------------------------
def sg_body(hours: list[int], token: str | None = None, values: dict | None = None) -> dict:
    regions = {
        "north": (1.41803, 103.82),
        "south": (1.29587, 103.82),
        "east": (1.35735, 103.94),
        "west": (1.35735, 103.7),
        "central": (1.35735, 103.82),
    }
    items = [
        {
            "date": "2024-03-01",
            "updatedTimestamp": f"2024-03-01T{h:02d}:05:00+08:00",
            "timestamp": f"2024-03-01T{h:02d}:00:00+08:00",
            "readings": {"pm25_one_hourly": values or {r: 10 + h for r in regions}},
        }
        for h in hours
    ]
    data = {
        "regionMetadata": [
            {"name": r, "labelLocation": {"latitude": a, "longitude": b}}
            for r, (a, b) in regions.items()
        ],
        "items": items,
    }
    if token:
        data["paginationToken"] = token
    return {"code": 0, "errorMsg": "", "data": data}


def test_data_gov_sg_follows_pages_and_converts_sgt_to_utc(tmp_path, httpserver):
    httpserver.expect_ordered_request(
        "/v2/real-time/api/pm25", query_string="date=2024-03-01"
    ).respond_with_json(sg_body([8, 9], token="b2Zmc2V0PTEwMA=="))
    httpserver.expect_ordered_request(
        "/v2/real-time/api/pm25",
        query_string="date=2024-03-01&paginationToken=b2Zmc2V0PTEwMA%3D%3D",
    ).respond_with_json(
        sg_body([10, 9], values={"north": -1, "south": 5, "east": 5, "west": 5, "central": 5})
    )
    svc = make_services(tmp_path, httpserver)
    result = ingest(svc, source="data-gov-sg", start="2024-03-01T00:00Z", end="2024-03-01T02:00Z")
    assert result["status"] == "success"
    rows = counts(svc, "SELECT ts, COUNT(*) AS n FROM observations GROUP BY ts ORDER BY ts")
    assert [r["ts"].hour for r in rows] == [0, 1, 2] and [r["n"] for r in rows] == [5, 5, 4]
    reasons = sorted(r["reason"] for r in counts(svc, "SELECT reason FROM rejected_rows"))
    assert (
        reasons
        == ["duplicate (location_id, ts) in batch with different values"] * 4
        + ["pm2_5=-1 outside physical range [0, 1500] µg/m³"] * 2
    )
    locs = counts(svc, "SELECT location_id, latitude FROM locations ORDER BY location_id")
    assert [r["location_id"] for r in locs] == [
        "sg-central",
        "sg-east",
        "sg-north",
        "sg-south",
        "sg-west",
    ]


def test_data_gov_sg_error_code_fails_clearly(tmp_path, httpserver):
    httpserver.expect_request("/v2/real-time/api/pm25").respond_with_json(
        {"code": 4, "name": "ERROR_PARAMS", "errorMsg": "Invalid date"}, status=400
    )
    svc = make_services(tmp_path, httpserver)
    with pytest.raises(RunFailed) as info:  # nothing landed: a 5xx, so the scheduler retries
        ingest(svc, source="data-gov-sg", start="2024-03-01T00:00Z", end="2024-03-01T02:00Z")
    assert "HTTP 400: Invalid date" in info.value.result["error"]


# -- AQICN ------------------------------------------------------------------------------------
def aqicn_feed(aqi="57", iso="2024-03-01T20:00:00+08:00", iaqi=None) -> dict:
    return {
        "status": "ok",
        "data": {
            "aqi": aqi,
            "idx": 1437,
            "dominentpol": "pm25",
            "city": {"geo": [31.2, 121.4], "name": "Shanghai", "url": "", "location": ""},
            "iaqi": iaqi
            if iaqi is not None
            else {
                "pm25": {"v": 57},
                "pm10": {"v": 30},
                "t": {"v": 12.5},
                "h": {"v": 80},
                "p": {"v": 1012},
                "w": {"v": 2.5},
            },
            "time": {"s": "2024-03-01 20:00:00", "tz": "+08:00", "v": 1709323200, "iso": iso},
            "forecast": {"daily": {}},
            "attributions": [],
        },
    }


def test_aqicn_maps_aqi_to_aqi_columns_and_never_logs_the_token(tmp_path, httpserver):
    httpserver.expect_request(
        "/feed/geo:1.5;103.8/", query_string={"token": TOKEN}
    ).respond_with_json(aqicn_feed(aqi=57))
    httpserver.expect_request("/feed/geo:2.5;103.8/").respond_with_json(
        {"status": "error", "data": "Invalid key"}
    )
    svc = make_services(
        tmp_path,
        httpserver,
        aqicn_token=TOKEN,
        locations_file=locations_file(tmp_path, "sh-a", "sh-b", source="aqicn"),
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("aircast")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        result = ingest(svc, source="aqicn")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    row = counts(svc, "SELECT * FROM observations")[0]
    assert (row["us_aqi"], row["us_aqi_pm2_5"]) == (57.0, 57.0) and pd.isna(row["pm2_5"])
    assert row["ts"] == AS_OF and row["wind_speed_10m"] == 9.0  # 2.5 m/s
    assert result["failed_locations"] == [
        {"location_id": "sh-b", "error": "AQICN error (HTTP 200): Invalid key"}
    ]
    for part in (stream.getvalue(), json.dumps(result)):
        assert TOKEN not in part, part
    for table in ("runs", "rejected_rows", "observations_raw"):
        dump = json.dumps(counts(svc, f"SELECT * FROM {table}"), default=str)
        assert TOKEN not in dump, (table, dump)
    assert "run finished" in stream.getvalue()
    assert TOKEN not in repr(svc.settings)


def test_aqicn_without_a_value_or_token(tmp_path, httpserver):
    httpserver.expect_request("/feed/geo:1.5;103.8/").respond_with_json(
        aqicn_feed(aqi="-", iaqi={})
    )
    svc = make_services(
        tmp_path,
        httpserver,
        aqicn_token=TOKEN,
        locations_file=locations_file(tmp_path, "sh-a", source="aqicn"),
    )
    result = ingest(svc, source="aqicn")
    assert result["counts"] == {**result["counts"], "fetched": 1, "accepted": 0}
    svc = make_services(
        tmp_path, httpserver, locations_file=locations_file(tmp_path, "sh-a", source="aqicn")
    )
    with pytest.raises(RunFailed) as info:
        ingest(svc, source="aqicn")
    assert "AIRCAST_AQICN_TOKEN is not set" in info.value.result["error"]


@pytest.fixture(autouse=True)
def _no_cached_services():
    services.reset()
