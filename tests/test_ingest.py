"""The ingest job end to end: synthetic and csv sources, idempotency, late corrections,
the real Beijing files, and the function over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests

from common.config import Settings
from common.jobs.ingest import IngestRequest, run_ingest
from common.localstack import free_port, start_function, stop
from common.services import Services
from common.sources.base import Location, Window
from common.sources.csv_files import COMPASS
from common.sources.synthetic import SyntheticSource
from common.storage import open_store
from common.warehouse import open_warehouse

AS_OF = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)


def svc_for(settings: Settings) -> Services:
    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    return Services(settings, warehouse, open_store(settings))


def q(svc: Services, sql: str) -> pd.DataFrame:
    return svc.warehouse.query(sql)


def test_synthetic_values_do_not_depend_on_the_window(local_settings: Settings):
    src = SyntheticSource(local_settings)
    loc = Location("synth-x", "x", 40.0, 116.0, "synthetic", "Asia/Shanghai")
    a = src.fetch(
        [loc], Window(AS_OF - dt.timedelta(days=3), AS_OF, AS_OF, live=False)
    ).observations
    b = src.fetch(
        [loc], Window(AS_OF - dt.timedelta(hours=30), AS_OF, AS_OF, live=False)
    ).observations
    both = a.merge(b, on=["location_id", "ts"], suffixes=("_a", "_b"))
    assert len(both) >= 28 and (both["pm2_5_a"].fillna(-1) == both["pm2_5_b"].fillna(-1)).all()
    assert a["pm2_5"].between(0, 1500).all() or a["pm2_5"].isna().any()
    fc = src.fetch([loc], Window(AS_OF, AS_OF, AS_OF, live=True)).weather_forecasts
    assert fc["ts"].min() == AS_OF + dt.timedelta(hours=1) and (fc["issued_at"] == AS_OF).all()


def test_same_window_three_times_gives_no_duplicates(settings: Settings):
    svc = svc_for(settings)
    req = IngestRequest(
        as_of=AS_OF, start=AS_OF - dt.timedelta(hours=12), end=AS_OF, source="synthetic"
    )
    first = run_ingest(req, svc)
    for _ in range(2):
        again = run_ingest(req, svc)
        assert again["counts"]["written"] == 0
        assert again["counts"]["unchanged"] == first["counts"]["accepted"]
    view = q(svc, "SELECT location_id, ts, COUNT(*) AS n FROM observations GROUP BY 1, 2")
    assert len(view) == first["counts"]["accepted"] and (view["n"] == 1).all()
    raw = q(svc, "SELECT COUNT(*) AS n FROM observations_raw")["n"].iloc[0]
    assert raw == first["counts"]["written"]
    assert len(q(svc, "SELECT * FROM runs")) == 3


def test_a_late_correction_supersedes_the_old_value(settings: Settings, tmp_path: Path):
    path = tmp_path / "history.csv"
    path.write_text(
        "location_id,ts,pm2_5,temperature_2m\n"
        "site-1,2024-03-01T00:00:00Z,10,5.0\n"
        "site-1,2024-03-01T01:00:00Z,11,5.5\n"
    )
    svc = svc_for(settings)
    req = IngestRequest(as_of=AS_OF, start="2024-03-01T00:00Z", end="2024-03-01T02:00Z",
                        source="csv", path=str(path))  # fmt: skip
    assert run_ingest(req, svc)["counts"]["written"] == 2
    path.write_text(
        "location_id,ts,pm2_5,temperature_2m\n"
        "site-1,2024-03-01T00:00:00Z,10,5.0\n"
        "site-1,2024-03-01T01:00:00Z,14,5.5\n"  # corrected upstream
        "site-1,2024-03-01T02:00:00Z,12,6.0\n"  # arrived late
    )
    result = run_ingest(req, svc)
    assert result["counts"]["written"] == 2 and result["counts"]["unchanged"] == 1
    view = q(svc, "SELECT ts, pm2_5 FROM observations ORDER BY ts")
    assert list(view["pm2_5"]) == [10.0, 14.0, 12.0]
    assert q(svc, "SELECT COUNT(*) AS n FROM observations_raw")["n"].iloc[0] == 4


def test_csv_long_format_with_location_metadata_and_bad_columns(local_settings, tmp_path: Path):
    good = tmp_path / "good.csv"
    good.write_text(
        "location_id,name,latitude,longitude,ts,pm2_5\n"
        "my-site,My Site,1.3,103.8,2024-03-01T08:00:00+08:00,7\n"
    )
    svc = svc_for(local_settings)
    run_ingest(IngestRequest(as_of=AS_OF, start="2024-03-01T00:00Z", end=AS_OF, source="csv",
                             path=str(good)), svc)  # fmt: skip
    assert q(svc, "SELECT ts FROM observations")["ts"].iloc[0] == pd.Timestamp("2024-03-01T00:00Z")
    loc = q(svc, "SELECT name, latitude FROM locations").iloc[0]
    assert (loc["name"], loc["latitude"]) == ("My Site", 1.3)
    bad = tmp_path / "bad.csv"
    bad.write_text("location_id,ts,pm25\nx,2024-03-01T00:00:00Z,3\n")
    from common.errors import RunFailed

    with pytest.raises(RunFailed, match="unknown columns"):
        run_ingest(IngestRequest(as_of=AS_OF, start="2024-03-01T00:00Z", end=AS_OF,
                                 source="csv", path=str(bad)), svc)  # fmt: skip


def test_one_month_of_the_eight_beijing_stations(local_settings, shared_data: Path):
    folder = shared_data / "beijing-multisite"
    svc = svc_for(local_settings)
    result = run_ingest(
        IngestRequest(start="2016-03-01T00:00Z", end="2016-03-31T23:00Z", source="csv",
                      path=str(folder)), svc)  # fmt: skip
    assert result["status"] == "success" and result["counts"]["rejected"] == 0
    per_station = q(svc, "SELECT location_id, COUNT(*) AS n FROM observations GROUP BY 1")
    assert len(per_station) == 8 and (per_station["n"] == 31 * 24).all()
    # Local time (UTC+8) in the file -> UTC in the warehouse.
    raw = pd.read_csv(folder / "PRSA_Data_Dongsi_20130301-20170228.csv")
    local_8am = raw[(raw.year == 2016) & (raw.month == 3) & (raw.day == 1) & (raw.hour == 8)].iloc[
        0
    ]
    row = q(svc, "SELECT * FROM observations WHERE location_id = 'beijing-dongsi' "
                 "AND ts = TIMESTAMP '2016-03-01 00:00:00+00'").iloc[0]  # fmt: skip
    assert row["pm2_5"] == local_8am["PM2.5"] and row["temperature_2m"] == local_8am["TEMP"]
    # Compass -> degrees, m/s -> km/h.
    assert row["wind_direction_10m"] == COMPASS[local_8am["wd"]]
    assert row["wind_speed_10m"] == pytest.approx(local_8am["WSPM"] * 3.6)
    assert 0 <= row["relative_humidity_2m"] <= 100
    first = q(svc, "SELECT MIN(ts) AS a, MAX(ts) AS b FROM observations").iloc[0]
    assert first["a"] == pd.Timestamp("2016-03-01T00:00Z") and first["b"] == pd.Timestamp(
        "2016-03-31T23:00Z"
    )
    locs = q(svc, "SELECT * FROM locations")
    assert len(locs) == 8 and locs["latitude"].between(39.8, 40.4).all()


def test_bad_requests_name_the_field(local_settings):
    from common.handlers import AircastBadBody, parse

    for body, field in [
        ({"start": "2024-03-01T00:00Z"}, "start"),
        ({"source": "nope"}, "source"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"locations": ["Bad Id!"]}, "locations"),
        ({"colour": "red"}, "colour"),
    ]:
        with pytest.raises(AircastBadBody) as info:
            parse(IngestRequest, body)
        assert field in info.value.message
    svc = svc_for(local_settings)
    from common.errors import BadRequest

    with pytest.raises(BadRequest, match="unknown locations"):
        run_ingest(IngestRequest(as_of=AS_OF, locations=["nowhere"]), svc)


@pytest.fixture
def served_ingest(tmp_path: Path):
    env = {"AIRCAST_HOME": str(tmp_path / "home"), "AIRCAST_BACKEND": "local"}
    served = start_function("ingest", free_port(), env=env, log_dir=tmp_path)
    yield served.url, tmp_path / "home"
    stop([served])


def test_the_function_answers_a_real_http_post(served_ingest):
    url, home = served_ingest
    resp = requests.post(url, json={"as_of": "2024-03-01T12:00:00Z"}, timeout=60)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "success" and body["counts"]["written"] > 0
    assert body["failed_locations"] == [] and body["run_id"].startswith("ingest-20240301T1200Z")
    bad = requests.post(url, json={"as_of": "soon"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["field"] == "as_of"
    assert requests.post(url, data="{oops", timeout=30).status_code == 400
    assert requests.get(url, timeout=30).status_code == 405
    out = subprocess.run(
        [sys.executable, "-m", "common.cli", "sql", "--json", "SELECT COUNT(*) AS n FROM runs"],
        env={**os.environ, "AIRCAST_HOME": str(home)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout) == [{"n": 1}]
