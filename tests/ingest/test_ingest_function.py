"""The ingest function served by functions-framework on loopback, answering real HTTP POSTs.

One server process for the module, started exactly as Cloud Run's buildpack would run it
(`functions-framework --target ingest --source functions/ingest/main.py`), with the
public API URLs pointing at a local fake that serves Open-Meteo's documented shapes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer

from common.core.config import load_settings
from common.warehouse import open_warehouse
from tests.emulators import free_port

ROOT = Path(__file__).resolve().parents[2]
LOCATIONS = """
[[location]]
id = "synth-a"
name = "Synthetic A"
latitude = 40.0
longitude = 116.4
source = "synthetic"
timezone = "Asia/Shanghai"

[[location]]
id = "om-a"
name = "A"
latitude = 1.5
longitude = 103.8
source = "open-meteo"

[[location]]
id = "om-b"
name = "B"
latitude = 2.5
longitude = 103.8
source = "open-meteo"
"""


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"functions-framework exited:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"functions-framework did not listen within {timeout}s")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, make_httpserver: HTTPServer
) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("ingest-function")
    (tmp / "locations.toml").write_text(LOCATIONS)
    base = make_httpserver.url_for("")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRCAST_")},
        "AIRCAST_BACKEND": "local",
        "AIRCAST_HOME": str(tmp / "home"),
        "AIRCAST_LOCATIONS_FILE": str(tmp / "locations.toml"),
        "AIRCAST_OPEN_METEO_AIR_URL": f"{base}v1/air-quality",
        "AIRCAST_OPEN_METEO_URL": f"{base}v1/forecast",
        "AIRCAST_OPEN_METEO_ARCHIVE_URL": f"{base}v1/archive",
        "AIRCAST_HTTP_RETRIES": "0",
    }
    exe = Path(sys.executable).parent / "functions-framework"
    cmd = [str(exe), "--target", "ingest", "--source", "functions/ingest/main.py",
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    log = tmp / "function.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}", tmp / "home"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def om_item(n: int, values: dict[str, list]) -> dict:
    hours = [f"2024-03-01T{h:02d}:00" for h in range(13)]
    units = {"pm2_5": "μg/m³", "temperature_2m": "°C"}
    return {
        "latitude": 1.5 + n,
        "longitude": 103.75,
        **({"location_id": n} if n else {}),
        "hourly_units": {"time": "iso8601", **{k: units[k] for k in values}},
        "hourly": {"time": hours, **values},
    }


def runs(home: Path) -> list[dict]:
    settings = load_settings(backend="local", home=home)
    return open_warehouse(settings).query("SELECT * FROM run_status").to_dict("records")


def test_a_post_runs_an_ingest_and_answers_json(served):
    url, home = served
    resp = requests.post(
        url, json={"as_of": "2024-03-01T12:00:00Z", "source": "synthetic"}, timeout=60
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "success" and body["failed_locations"] == []
    assert body["run_id"].startswith("ingest-20240301T1200Z")
    assert set(body["counts"]) >= {"fetched", "accepted", "rejected", "written"}
    assert body["counts"]["written"] > 0 and body["counts"]["weather_forecasts"] > 0
    assert any(r["run_id"] == body["run_id"] and r["status"] == "success" for r in runs(home))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"as_of": "soon"}, "as_of"),
        ({"source": "nope"}, "source"),
        ({"start": "2024-03-01T00:00Z"}, "end"),  # start without end
        ({"end": "2024-03-01T00:00Z"}, "end"),
        ({"start": "2024-03-02T00:00Z", "end": "2024-03-01T00:00Z"}, "end"),
        ({"start": "yesterday", "end": "2024-03-01T00:00Z"}, "start"),
        ({"locations": []}, "locations"),
        ({"colour": "red"}, "colour"),
        ({"source": "csv", "path": "/etc/passwd"}, "path"),  # was opened and parsed
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(served, body, field):
    url, _ = served
    resp = requests.post(url, json=body, timeout=30)
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field and field in resp.json()["error"]


def test_not_json_or_not_a_post_is_a_4xx(served):
    url, _ = served
    assert requests.post(url, data="{oops", timeout=30).status_code == 400
    assert requests.post(url, json=[1, 2], timeout=30).status_code == 400
    assert requests.get(url, timeout=30).status_code == 405


def test_one_failing_location_is_a_partial_200(served, httpserver: HTTPServer):
    url, _ = served
    broken = {"latitude": 2.5, "longitude": 103.75, "location_id": 1}  # no "hourly"
    httpserver.expect_request("/v1/air-quality").respond_with_json(
        [om_item(0, {"pm2_5": [10.0] * 13}), broken]
    )
    httpserver.expect_request("/v1/archive").respond_with_json(
        [om_item(0, {"temperature_2m": [20.0] * 13}), broken]
    )
    resp = requests.post(
        url, json={"as_of": "2024-03-01T12:00:00Z", "source": "open-meteo"}, timeout=60
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "partial" and body["counts"]["written"] == 7
    assert [f["location_id"] for f in body["failed_locations"]] == ["om-b"]
    assert "hourly" in body["failed_locations"][0]["error"]


def test_every_location_failing_is_a_5xx_so_the_scheduler_retries(served, httpserver):
    url, home = served
    overloaded = {"error": True, "reason": "The service is overloaded"}
    httpserver.expect_request("/v1/air-quality").respond_with_json(overloaded, status=503)
    httpserver.expect_request("/v1/archive").respond_with_json(overloaded, status=503)
    resp = requests.post(
        url, json={"as_of": "2024-03-01T13:00:00Z", "source": "open-meteo"}, timeout=60
    )
    assert resp.status_code == 500, resp.text
    body = resp.json()
    assert body["status"] == "failed" and "The service is overloaded" in body["error"]
    assert any(r["run_id"] == body["run_id"] and r["status"] == "failed" for r in runs(home))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"as_of": "0001-01-01T00:00:00Z"}, "as_of"),  # was a 500 (OverflowError)
        ({"as_of": "9999-12-31T23:00:00Z"}, "as_of"),
        ({"as_of": "0001-01-01T00:00:00+05:00"}, "as_of"),
        ({"start": "1969-12-31T00:00:00Z", "end": "1970-01-02T00:00:00Z"}, "start"),
    ],
)
def test_a_time_outside_the_accepted_range_is_a_400_naming_it(served, body, field):
    url, home = served
    before = len(runs(home))
    resp = requests.post(url, json=body, timeout=30)
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == field and "1970-01-01T00:00:00Z" in resp.json()["error"]
    assert len(runs(home)) == before  # a caller's mistake starts no run


def test_an_oversized_body_is_a_413_naming_the_limit(served):
    url, _ = served
    big = b'{"locations": ["' + b"a" * (3 * 2**20) + b'"]}'
    resp = requests.post(url, data=big, headers={"content-type": "application/json"}, timeout=30)
    assert resp.status_code == 413, resp.text
    assert resp.json()["field"] == "body" and "2097152 bytes" in resp.json()["error"]
    assert "AIRCAST_MAX_REQUEST_BYTES" in resp.json()["error"]
