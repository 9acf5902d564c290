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

from common.core.catalog import CLOUD_SOURCES, SOURCE_NAMES
from common.core.config import load_settings
from common.core.errors import RunFailed
from common.core.logs import JsonFormatter
from common.core.timeutil import floor_hour
from common.ingest.job import IngestRequest, run_ingest
from common.runtime import services
from common.runtime.services import Services
from common.sources import ADAPTERS, Source, make_source, source_class
from common.storage import open_store
from common.warehouse import open_warehouse
from tests.sources.openaq_fake import hour_item as openaq_hour
from tests.sources.openaq_fake import location as openaq_location

AS_OF = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
HOURS = [f"2024-03-01T{h:02d}:00" for h in range(0, 24)]
TOKEN = "s3cret-token-value"
HOUR = dt.timedelta(hours=1)


def make_services(tmp_path, server: HTTPServer, **extra) -> Services:
    base = server.url_for("")
    settings = load_settings(
        home=tmp_path / "home",
        open_meteo_url=f"{base}v1/forecast",
        open_meteo_archive_url=f"{base}v1/archive",
        open_meteo_air_url=f"{base}v1/air-quality",
        data_gov_sg_url=f"{base}v2/real-time/api/pm25",
        aqicn_url=base,
        openaq_url=f"{base}v3",
        **{"http_retries": 2, "http_timeout_seconds": 2, **extra},
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
    # CAMS is a model: every row says so, not "measurement"
    assert counts(svc, "SELECT DISTINCT provenance FROM observations_raw") == [
        {"provenance": "model"}
    ]


def test_open_meteo_live_run_keeps_weather_after_as_of_as_forecasts(tmp_path, httpserver):
    as_of = floor_hour(dt.datetime.now(dt.UTC))
    start = as_of - dt.timedelta(hours=6)
    hours = [start + dt.timedelta(hours=i) for i in range(6 + 1 + 48)]
    times = [f"{t:%Y-%m-%dT%H:%M}" for t in hours]
    air = om_item({"pm2_5": [10.0] * len(times)})
    air["hourly"]["time"] = times
    weather = om_item({"temperature_2m": [20.0] * len(times), "wind_speed_10m": [5.0] * len(times)})
    weather["hourly"]["time"] = times
    httpserver.expect_request("/v1/air-quality").respond_with_json(air)
    httpserver.expect_request("/v1/forecast").respond_with_json(weather)
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    result = run_ingest(IngestRequest(as_of=as_of, source="open-meteo"), svc)
    assert result["counts"]["weather_forecasts"] == 48
    fc = counts(
        svc, "SELECT MIN(ts) AS a, MAX(ts) AS b, MAX(issued_at) AS i FROM weather_forecasts"
    )
    assert fc == [{"a": as_of + HOUR, "b": as_of + 48 * HOUR, "i": as_of}]
    assert counts(svc, "SELECT DISTINCT kind FROM weather_forecasts") == [{"kind": "as-issued"}]
    # the air-quality API's hours after as_of are CAMS's forecast as issued, not observations
    assert result["counts"]["air_quality_forecasts"] == 48
    cams = counts(
        svc,
        "SELECT MIN(ts) AS a, MAX(ts) AS b, MAX(issued_at) AS i, MAX(pm2_5) AS v, "
        "MAX(provider) AS p FROM air_quality_forecasts",
    )
    assert cams == [{"a": as_of + HOUR, "b": as_of + 48 * HOUR, "i": as_of, "v": 10.0, "p": "cams"}]
    air_req = next(r for r, _ in httpserver.log if r.path == "/v1/air-quality")
    assert air_req.args["end_date"] == f"{as_of + 48 * HOUR:%Y-%m-%d}"
    obs = counts(svc, "SELECT MIN(ts) AS a, MAX(ts) AS b, COUNT(*) AS n FROM observations")
    assert obs == [{"a": start, "b": as_of, "n": 7}]  # nothing after as_of is an observation
    weather_req = next(r for r, _ in httpserver.log if r.path == "/v1/forecast")
    assert weather_req.args["end_date"] == f"{as_of + 48 * HOUR:%Y-%m-%d}"
    again = run_ingest(IngestRequest(as_of=as_of, source="open-meteo"), svc)
    assert again["counts"]["weather_forecasts"] == 0 and again["counts"]["written"] == 0
    assert again["counts"]["air_quality_forecasts"] == 0


def test_an_old_as_of_writes_no_weather_forecasts(tmp_path, httpserver):
    """For an as_of in the past the API's later hours are what happened, not a forecast."""
    httpserver.expect_request("/v1/air-quality").respond_with_json(om_item({"pm2_5": [10.0] * 24}))
    httpserver.expect_request("/v1/archive").respond_with_json(
        om_item({"temperature_2m": [float(h) for h in range(24)], "wind_speed_10m": [5.0] * 24})
    )
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    result = ingest(svc, source="open-meteo")
    assert result["counts"]["weather_forecasts"] == 0
    assert result["counts"]["air_quality_forecasts"] == 0
    assert counts(svc, "SELECT COUNT(*) AS n FROM weather_forecasts") == [{"n": 0}]
    obs = counts(svc, "SELECT MAX(ts) AS b, MIN(ts) AS a FROM observations")[0]
    assert obs["b"] == AS_OF and obs["a"] == AS_OF - dt.timedelta(hours=6)
    assert all(r.args["end_date"] == "2024-03-01" for r, _ in httpserver.log)


def test_open_meteo_duplicated_out_of_order_nan_and_text_values(tmp_path, httpserver):
    item = om_item({"pm2_5": [1.0] * 6})
    item["hourly"]["time"] = [
        "2024-03-01T09:00", "2024-03-01T07:00", "2024-03-01T08:00",
        "2024-03-01T08:00", "2024-03-01T10:00", "2024-03-01T11:00",
    ]  # fmt: skip
    item["hourly"]["pm2_5"] = [9.0, 7.0, 8.0, 8.5, float("nan"), "n/a"]
    body = json.dumps(item)  # Python writes NaN as the bare token NaN, as some servers do
    assert "NaN" in body
    httpserver.expect_request("/v1/air-quality").respond_with_data(
        body, content_type="application/json"
    )
    httpserver.expect_request("/v1/archive").respond_with_json(
        om_item({"temperature_2m": [20.0] * 13})
    )
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    result = ingest(svc, source="open-meteo")
    assert result["status"] == "success"
    rows = counts(svc, "SELECT ts, pm2_5 FROM observations WHERE ts BETWEEN "
                       "TIMESTAMP '2024-03-01 07:00:00+00' AND TIMESTAMP '2024-03-01 11:00:00+00' "
                       "ORDER BY ts")  # fmt: skip
    pm = [None if pd.isna(r["pm2_5"]) else r["pm2_5"] for r in rows]
    # 10:00 (NaN) lands with its weather and no PM2.5; 11:00 ("n/a") is quarantined whole.
    assert [r["ts"].hour for r in rows] == [7, 8, 9, 10] and pm == [7.0, 8.0, 9.0, None]
    reasons = sorted(r["reason"] for r in counts(svc, "SELECT reason FROM rejected_rows"))
    assert reasons == [
        "duplicate (location_id, ts) in batch with different values",
        "pm2_5: not a number",
    ]
    payloads = [r["payload"] for r in counts(svc, "SELECT payload FROM rejected_rows")]
    assert any('"n/a"' in p for p in payloads) and any("8.5" in p for p in payloads)


def test_a_partial_answer_does_not_erase_values_stored_earlier(tmp_path, httpserver):
    """The air endpoint fails on the second run: its weather lands, the PM2.5 stays."""
    httpserver.expect_ordered_request("/v1/air-quality").respond_with_json(
        om_item({"pm2_5": [10.0] * 13})
    )
    httpserver.expect_ordered_request("/v1/archive").respond_with_json(
        om_item({"temperature_2m": [20.0] * 13})
    )
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    svc = Services(svc.settings.model_copy(update={"http_retries": 0}), svc.warehouse, svc.store)
    first = ingest(svc, source="open-meteo")
    assert first["counts"]["written"] == 7
    httpserver.expect_ordered_request("/v1/air-quality").respond_with_json(
        {"error": True, "reason": "The service is overloaded"}, status=503
    )
    httpserver.expect_ordered_request("/v1/archive").respond_with_json(
        om_item({"temperature_2m": [20.0] * 12 + [21.5]})  # a corrected 12:00 temperature
    )
    second = ingest(svc, source="open-meteo")
    assert second["status"] == "partial" and second["counts"]["written"] == 1
    assert second["counts"]["unchanged"] == 6
    assert "HTTP 503" in second["failed_locations"][0]["error"]
    rows = counts(svc, "SELECT ts, pm2_5, temperature_2m FROM observations ORDER BY ts")
    assert [r["pm2_5"] for r in rows] == [10.0] * 7
    assert [r["temperature_2m"] for r in rows] == [20.0] * 6 + [21.5]


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
    assert counts(svc, "SELECT status FROM run_status") == [{"status": "failed"}]


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
    from common.scheduling.stack import free_port

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


# -- Every source: the same faults ------------------------------------------------------------
def sg_live_body() -> dict:
    return sg_body(list(range(14, 21)))  # 14:00-20:00 SGT = the live window 06:00-12:00 UTC


FAULT_SOURCES = {
    # source -> {path: good answer}, for a live run at AS_OF with one location
    "open-meteo": lambda: {
        "/v1/air-quality": om_item({"pm2_5": [10.0] * 13}),
        "/v1/archive": om_item({"temperature_2m": [20.0] * 13}),
    },
    "data-gov-sg": lambda: {"/v2/real-time/api/pm25": sg_live_body()},
    "aqicn": lambda: {"/feed/geo:1.5;103.8/": aqicn_feed()},
    # discovery is the request every OpenAQ run starts with; its values are answered apart
    "openaq": lambda: {"/v3/locations": openaq_page([openaq_location(2178, [(3920, 2)])])},
}
# Answers a source needs besides the faulted ones, always good.
FAULT_BACKGROUND = {
    "openaq": lambda: {
        "/v3/sensors/3920/hours": openaq_page(
            [openaq_hour(AS_OF - h * HOUR, 10.0, 2, "America/Denver") for h in range(1, 4)]
        )
    },
}


def openaq_page(results: list) -> dict:
    found = ">1000" if len(results) >= 1000 else len(results)
    meta = {"name": "openaq-api", "website": "/", "page": 1, "limit": 1000, "found": found}
    return {"meta": meta, "results": results}


def test_every_source_that_runs_on_google_cloud_is_in_the_fault_suite():
    assert set(FAULT_SOURCES) == set(CLOUD_SOURCES)


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_every_catalogued_source_loads_the_adapter_named_after_it(name):
    adapter = source_class(name)
    assert issubclass(adapter, Source) and adapter.name == name
    assert set(ADAPTERS) == set(SOURCE_NAMES)


def test_make_source_builds_each_source_and_refuses_unknown_names(tmp_path):
    settings = load_settings(home=tmp_path, csv_path=tmp_path)
    (tmp_path / "a.csv").write_text("location_id,ts,pm2_5\nx,2024-03-01T00:00Z,1\n")
    for name in SOURCE_NAMES:
        assert type(make_source(name, settings)) is source_class(name)
    assert make_source("csv", settings, tmp_path / "a.csv").path == tmp_path / "a.csv"
    with pytest.raises(ValueError, match="unknown source 'nope'; one of open-meteo"):
        make_source("nope", settings)


def fault_services(tmp_path, httpserver, source: str, **extra) -> Services:
    for path, good in FAULT_BACKGROUND.get(source, dict)().items():
        httpserver.expect_request(path).respond_with_json(good)
    return make_services(
        tmp_path,
        httpserver,
        aqicn_token=TOKEN,
        openaq_api_key=TOKEN,
        openaq_countries="US",
        locations_file=locations_file(tmp_path, "site-a", source=source),
        **extra,
    )


@pytest.mark.parametrize("source", FAULT_SOURCES)
def test_every_source_waits_out_a_429_with_retry_after(tmp_path, httpserver, source):
    for path, good in FAULT_SOURCES[source]().items():
        httpserver.expect_oneshot_request(path).respond_with_response(
            Response('{"error": "rate limited"}', status=429, headers={"Retry-After": "1"})
        )
        httpserver.expect_request(path).respond_with_json(good)
    svc = fault_services(tmp_path, httpserver, source)
    began = time.monotonic()
    result = ingest(svc, source=source)
    assert time.monotonic() - began >= 1.0  # Retry-After honoured, not a blind fast retry
    assert result["status"] == "success" and result["counts"]["written"] > 0
    statuses = [resp.status_code for _, resp in httpserver.log]
    assert statuses.count(429) == len(FAULT_SOURCES[source]()) and statuses[-1] == 200


@pytest.mark.parametrize("source", FAULT_SOURCES)
def test_every_source_fails_the_run_on_a_persistent_500(tmp_path, httpserver, source):
    for path in FAULT_SOURCES[source]():
        httpserver.expect_request(path).respond_with_data("<h1>Internal error</h1>", status=500)
    svc = fault_services(tmp_path, httpserver, source)
    with pytest.raises(RunFailed) as info:
        ingest(svc, source=source)
    assert "500" in info.value.result["error"]
    assert len(httpserver.log) == 3 * len(FAULT_SOURCES[source]())  # 1 try + 2 retries each
    assert counts(svc, "SELECT status FROM run_status") == [{"status": "failed"}]
    assert counts(svc, "SELECT COUNT(*) AS n FROM observations_raw") == [{"n": 0}]
    assert counts(svc, "SELECT COUNT(*) AS n FROM rejected_rows") == [{"n": 0}]  # no data seen


@pytest.mark.parametrize("source", FAULT_SOURCES)
def test_every_source_gives_up_on_a_timeout_with_a_clear_error(tmp_path, httpserver, source):
    def slow(request: Request) -> Response:
        time.sleep(0.8)
        return Response("{}", content_type="application/json")

    for path in FAULT_SOURCES[source]():
        httpserver.expect_request(path).respond_with_handler(slow)
    svc = fault_services(tmp_path, httpserver, source, http_retries=0, http_timeout_seconds=0.3)
    with pytest.raises(RunFailed) as info:
        ingest(svc, source=source)
    assert "no answer within 0.3s" in info.value.result["error"]
    deadline = time.monotonic() + 10  # let the server finish, so no late request leaks out
    while len(httpserver.log) < len(FAULT_SOURCES[source]()) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("source", FAULT_SOURCES)
def test_every_source_quarantines_malformed_json(tmp_path, httpserver, source):
    for path in FAULT_SOURCES[source]():
        httpserver.expect_request(path).respond_with_data(
            '{"truncated": [1, 2', content_type="application/json"
        )
    svc = fault_services(tmp_path, httpserver, source)
    with pytest.raises(RunFailed):
        ingest(svc, source=source)
    rows = counts(svc, "SELECT source, reason, payload FROM rejected_rows")
    assert rows and all(r["reason"] == "malformed JSON" for r in rows)
    assert all(r["source"] == source and '{\\"truncated\\": [1, 2' in r["payload"] for r in rows)


@pytest.mark.parametrize("source", FAULT_SOURCES)
def test_every_source_quarantines_a_response_missing_fields(tmp_path, httpserver, source):
    broken = {  # each answer without the field its rows hang on
        "open-meteo": {"latitude": 1.5, "longitude": 103.75, "hourly_units": {}},
        "data-gov-sg": {"code": 0, "errorMsg": "", "data": {"regionMetadata": []}},
        "aqicn": {"status": "ok", "data": {"aqi": 40, "iaqi": {"pm25": {"v": 40}}}},
        "openaq": {"meta": {"name": "openaq-api", "page": 1, "limit": 1000, "found": 0}},
    }[source]
    for path in FAULT_SOURCES[source]():
        httpserver.expect_request(path).respond_with_json(broken)
    svc = fault_services(tmp_path, httpserver, source)
    with pytest.raises(RunFailed) as info:
        ingest(svc, source=source)
    missing = {
        "open-meteo": "hourly",
        "data-gov-sg": "items",
        "aqicn": "time",
        "openaq": "results",
    }[source]
    assert missing in info.value.result["error"]
    rows = counts(svc, "SELECT reason FROM rejected_rows")
    assert rows and all(missing in r["reason"] and "Field required" in r["reason"] for r in rows)


# -- data.gov.sg: values ---------------------------------------------------------------------
def test_data_gov_sg_out_of_order_duplicates_nan_and_absurd_values(tmp_path, httpserver):
    body = sg_body([16, 14, 15])  # out of order
    body["data"]["items"].append(dict(body["data"]["items"][0]))  # 16:00 again, same values
    readings = body["data"]["items"][1]["readings"]["pm25_one_hourly"]  # 14:00 SGT
    readings.update({"north": float("nan"), "south": 5000, "east": "x", "west": -2})
    httpserver.expect_request("/v2/real-time/api/pm25").respond_with_data(
        json.dumps(body), content_type="application/json"
    )
    svc = make_services(tmp_path, httpserver)
    result = ingest(svc, source="data-gov-sg")
    assert result["status"] == "success"
    rows = counts(svc, "SELECT ts, COUNT(*) AS n FROM observations GROUP BY ts ORDER BY ts")
    # 14:00 SGT keeps only central (north NaN is no observation); 15:00 and 16:00 all five.
    assert [(r["ts"].hour, r["n"]) for r in rows] == [(6, 1), (7, 5), (8, 5)]
    reasons = sorted(r["reason"] for r in counts(svc, "SELECT reason FROM rejected_rows"))
    assert reasons == [
        *["duplicate (location_id, ts) in batch"] * 5,
        "pm2_5: not a number",
        "pm2_5=-2 outside physical range [0, 1500] µg/m³",
        "pm2_5=5000 outside physical range [0, 1500] µg/m³",
    ]


def test_data_gov_sg_a_day_not_published_yet_is_no_error(tmp_path, httpserver):
    httpserver.expect_request(
        "/v2/real-time/api/pm25", query_string="date=2024-03-02"
    ).respond_with_json(
        {"code": 17, "name": "REAL_TIME_API_DATA_NOT_FOUND", "errorMsg": "Data not found"},
        status=404,
    )
    httpserver.expect_request(
        "/v2/real-time/api/pm25", query_string="date=2024-03-01"
    ).respond_with_json(sg_body([22, 23]))
    svc = make_services(tmp_path, httpserver)
    req = IngestRequest(
        as_of="2024-03-02T00:00Z", start="2024-03-01T14:00Z", end="2024-03-01T16:00Z",
        source="data-gov-sg",
    )  # fmt: skip
    result = run_ingest(req, svc)
    assert result["status"] == "success" and result["counts"]["written"] == 10
    assert result["counts"]["weather_forecasts"] == 0


# -- AQICN: values and secrets -----------------------------------------------------------------
def test_aqicn_absurd_values_and_an_hour_after_as_of_are_quarantined(tmp_path, httpserver):
    httpserver.expect_request("/feed/geo:1.5;103.8/").respond_with_json(
        aqicn_feed(aqi=-5, iaqi={"pm25": {"v": 5000}, "t": {"v": 12}})
    )
    httpserver.expect_request("/feed/geo:2.5;103.8/").respond_with_json(
        aqicn_feed(iso="2024-03-01T21:00:00+08:00")  # 13:00 UTC: after as_of
    )
    svc = make_services(
        tmp_path,
        httpserver,
        aqicn_token=TOKEN,
        locations_file=locations_file(tmp_path, "sh-a", "sh-b", source="aqicn"),
    )
    result = ingest(svc, source="aqicn")
    assert result["counts"]["written"] == 0 and result["counts"]["rejected"] == 2
    reasons = sorted(r["reason"] for r in counts(svc, "SELECT reason FROM rejected_rows"))
    assert reasons == ["timestamp after as_of", "us_aqi=-5 outside physical range [0, 1000] USAQI"]


def test_aqicn_token_stays_out_of_a_network_error(tmp_path):
    from common.scheduling.stack import free_port

    settings = load_settings(
        home=tmp_path / "h",
        aqicn_url=f"http://127.0.0.1:{free_port()}",
        aqicn_token=TOKEN,
        http_retries=0,
        locations_file=locations_file(tmp_path, "sh-a", source="aqicn"),
    )
    svc = Services(settings, open_warehouse(settings), open_store(settings))
    with pytest.raises(RunFailed) as info:
        ingest(svc, source="aqicn")
    assert "cannot reach 127.0.0.1" in info.value.result["error"]
    dump = json.dumps(counts(svc, "SELECT * FROM run_status"), default=str)
    assert TOKEN not in dump and TOKEN not in json.dumps(info.value.result)
