"""The backfill of past weather forecasts from Open-Meteo's archives, against a local
server serving the documented shapes (../shared/reference/open-meteo-forecast-archives.md):
Previous Runs' `<var>_previous_dayN` kept as issued N days before (issued_at an upper bound
on when it was available), the Historical Forecast API only where Previous Runs has nothing
(labelled as such), units checked, re-runs idempotent, and the as-issued rule placing them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from common.forecasting.as_issued import place
from common.ingest.job import IngestRequest, run_ingest
from common.sources.open_meteo_archive import HISTORICAL_RANK, days_for
from tests.sources.test_sources_http import HOURS, counts, locations_file, make_services

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
AS_OF = START + dt.timedelta(days=1)
H = dt.timedelta(hours=1)


def item(values: dict[str, list], units: dict[str, str], n: int = 0) -> dict:
    out = {
        "latitude": 1.5 + n,
        "longitude": 103.75,
        "generationtime_ms": 0.4,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "hourly_units": {"time": "iso8601", **units},
        "hourly": {"time": HOURS, **values},
    }
    if n:
        out["location_id"] = n
    return out


def test_previous_runs_are_kept_as_issued_and_historical_forecasts_fill_only_the_rest(
    tmp_path, httpserver
):
    day1 = [None] * 4 + [20.0 + h for h in range(4, 24)]  # the first hours not archived
    day2 = [30.0 + h for h in range(24)]
    prev = [
        item(
            {
                "temperature_2m_previous_day1": day1,
                "temperature_2m_previous_day2": day2,
                "wind_speed_10m_previous_day1": [None] * 4 + [5.0] * 20,
                "surface_pressure_previous_day1": [1.0] * 24,  # a wrong unit: quarantined
            },
            {
                "temperature_2m_previous_day1": "°C",
                "temperature_2m_previous_day2": "°C",
                "wind_speed_10m_previous_day1": "km/h",
                "surface_pressure_previous_day1": "bar",
            },
        ),
        item({"temperature_2m_previous_day1": [None] * 24}, {}, n=1),  # not archived there
    ]
    hist = item({"temperature_2m": [10.0] * 24, "wind_speed_10m": [3.0] * 24}, {}, n=1)
    hist["hourly_units"] = {"time": "iso8601", "temperature_2m": "°C", "wind_speed_10m": "km/h"}
    httpserver.expect_request("/prev/v1/forecast").respond_with_json(prev)
    httpserver.expect_request("/hist/v1/forecast").respond_with_json(hist)
    svc = make_services(
        tmp_path,
        httpserver,
        locations_file=locations_file(tmp_path, "sg-a", "sg-b"),
        open_meteo_previous_runs_url=httpserver.url_for("/prev/v1/forecast"),
        open_meteo_historical_forecast_url=httpserver.url_for("/hist/v1/forecast"),
    )
    request = IngestRequest(
        source="open-meteo", forecasts=True, as_of=AS_OF, start=START, end=AS_OF - H
    )
    result = run_ingest(request, svc)
    assert result["status"] == "success", result
    assert result["counts"]["air_quality_forecasts"] == 0  # Open-Meteo keeps no past CAMS

    asked = next(r for r, _ in httpserver.log if r.path == "/prev/v1/forecast")
    names = asked.args["hourly"].split(",")
    assert days_for(24) == [1, 2] and "temperature_2m_previous_day2" in names
    assert not any(n.endswith("_previous_day3") for n in names)  # 24 h needs days 1 and 2
    assert asked.args["start_date"] == "2024-03-01" and asked.args["timezone"] == "GMT"
    fallback = [r for r, _ in httpserver.log if r.path == "/hist/v1/forecast"]
    assert len(fallback) == 1 and fallback[0].args["latitude"] == "2.5000"  # sg-b alone

    rows = svc.warehouse.query(
        "SELECT location_id, issued_at, ts, temperature_2m, wind_speed_10m, surface_pressure, "
        "kind FROM weather_forecasts ORDER BY location_id, ts, issued_at"
    )
    a = rows[rows["location_id"] == "sg-a"]
    assert set(a["kind"]) == {"previous-runs"}
    lead = (a["ts"] - a["issued_at"]) / H
    assert sorted(set(lead)) == [18.0, 42.0]  # 24 N h before, plus the publication delay
    assert (lead == 18).sum() == 24 - 4 and (lead == 42).sum() == 24
    noon = a[(a["ts"] == START + 12 * H)].set_index(lead[a["ts"] == START + 12 * H])
    assert noon.loc[18.0, "temperature_2m"] == 32.0 and noon.loc[42.0, "temperature_2m"] == 42.0
    assert noon.loc[18.0, "wind_speed_10m"] == 5.0 and noon["surface_pressure"].isna().all()
    b = rows[rows["location_id"] == "sg-b"]
    assert set(b["kind"]) == {"historical-forecast"} and len(b) == 24
    assert ((b["ts"] - b["issued_at"]) == HISTORICAL_RANK).all()
    reasons = [r["reason"] for r in counts(svc, "SELECT reason FROM rejected_rows")]
    assert reasons == ["surface_pressure_previous_day1: unit 'bar', expected 'hPa'"]

    # The as-issued rule at t = 02:00: for 07:00 day 1 (issued 18 h before it, by t); for
    # 03:00 day 1 is missing there: day 2; for 21:00 day 1 was issued at 03:00, after t:
    # day 2. sg-b has the historical stand-in.
    start64 = np.datetime64("2024-03-01T00", "h")
    ids = ["sg-a", "sg-b"]
    got = place(rows, ids, start64, np.array([0, 1]), np.array([2, 2]), 19, ["temperature_2m"])
    t2m = got.values["temperature_2m"]
    assert (t2m[0, 4], t2m[0, 0], t2m[0, 18]) == (27.0, 33.0, 51.0)
    assert got.kind[1, 0] == "historical-forecast" and t2m[1, 0] == 10.0

    again = run_ingest(request, svc)
    assert again["counts"]["weather_forecasts"] == 0  # re-runs write nothing new


def test_a_source_without_an_archive_refuses_a_forecast_backfill(tmp_path, httpserver):
    svc = make_services(tmp_path, httpserver, locations_file=locations_file(tmp_path, "sg-a"))
    from common.core.errors import BadRequest

    try:
        run_ingest(IngestRequest(source="open-meteo", forecasts=True, as_of=AS_OF), svc)
    except BadRequest as exc:
        assert exc.field == "forecasts" and "needs start and end" in str(exc)
    else:
        raise AssertionError("a forecast backfill without a window was accepted")
    assert pd.Timestamp(AS_OF)  # nothing was fetched
    assert httpserver.log == []
