"""The api's routes through Flask's test client, on a LocalStore under a tmp AIRCAST_HOME."""

from __future__ import annotations

import datetime as dt
import logging
import re
import subprocess
import sys
from pathlib import Path

import flask
import functions_framework
import pytest
from pydantic import ValidationError

from common.core.config import Settings
from common.core.errors import AircastError, RunFailed
from common.forecasting.adaptation import Adaptation, Offsets
from common.forecasting.snapshot import SNAPSHOT_KEY, intervals_key
from common.monitoring import STATUS_KEY
from common.runtime.statuses import http_status
from common.serving.api import create_app
from common.serving.cache import OffsetsCache
from common.storage import open_store
from common.storage.local import LocalStore
from tests.api_fixtures import ISSUED, LOCATIONS, make_snapshot, promote, publish
from tests.conftest import use_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(local_settings: Settings):
    return open_store(local_settings)


@pytest.fixture
def client(local_settings: Settings, store) -> flask.testing.FlaskClient:
    publish(store, make_snapshot())
    return create_app(local_settings, store).test_client()


def test_health_reports_version_and_age(client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.get_json()
    assert body["model_version"] == "20261120T0000-abc123"
    assert body["locations"] == len(LOCATIONS) + 1
    age = (dt.datetime.now(dt.UTC) - ISSUED).total_seconds()
    assert body["snapshot_age_seconds"] == pytest.approx(age, abs=60)
    # issued days ago: older than AIRCAST_API_STALE_AFTER_HOURS
    assert body["status"] == "degraded" and "old" in body["reason"]


def test_health_ok_when_fresh_and_degraded_without_snapshot(local_settings, store) -> None:
    app = create_app(local_settings, store)
    r = app.test_client().get("/health")
    assert r.status_code == 200
    assert r.get_json()["status"] == "degraded"
    assert "no serving snapshot" in r.get_json()["reason"]
    publish(store, make_snapshot(issued_at=dt.datetime.now(dt.UTC).replace(microsecond=0)))
    fresh = create_app(local_settings, store).test_client().get("/health").get_json()
    assert fresh["status"] == "ok" and fresh["reason"] is None


def test_locations(client) -> None:
    body = client.get("/v1/locations").get_json()
    ids = [loc["location_id"] for loc in body["locations"]]
    assert ids == [*LOCATIONS, "retired-station"]
    assert body["locations"][0]["name"] == "Beijing Dongsi"


def test_forecast_for_one_location(client) -> None:
    snap = make_snapshot()
    r = client.get("/v1/forecasts/beijing-tiantan?hours=6")
    assert r.status_code == 200
    body = r.get_json()
    assert body["model_version"] == snap.model_version
    assert body["issued_at"] == "2026-11-20T12:00:00Z"
    assert [p["horizon_h"] for p in body["points"]] == [1, 2, 3, 4, 5, 6]
    assert body["points"][0]["target_ts"] == "2026-11-20T13:00:00Z"
    assert body["points"][5]["target_ts"] == "2026-11-20T18:00:00Z"
    fc = snap.forecasts["beijing-tiantan"]
    assert [p["yhat"] for p in body["points"]] == fc.yhat[:6]
    assert [p["yhat_lower"] for p in body["points"]] == fc.yhat_lower[:6]
    assert [p["yhat_upper"] for p in body["points"]] == fc.yhat_upper[:6]
    assert body["observations"] is None
    full = client.get("/v1/forecasts/beijing-tiantan?observations=true").get_json()
    assert len(full["points"]) == 24
    assert len(full["observations"]["values"]) == 48
    assert full["observations"]["values"][10] is None


@pytest.mark.parametrize("hours", ["0", "25", "-1", "abc", "1.5", ""])
def test_hours_out_of_range_is_400_naming_hours(client, hours) -> None:
    r = client.get(f"/v1/forecasts/beijing-dongsi?hours={hours}")
    assert r.status_code == 400
    assert r.get_json()["field"] == "hours"
    r = client.get(f"/v1/forecasts?hours={hours}")
    assert r.status_code == 400 and r.get_json()["field"] == "hours"


def test_unknown_location_is_404(client) -> None:
    r = client.get("/v1/forecasts/nowhere")
    assert r.status_code == 404
    assert r.get_json() == {"error": "unknown location 'nowhere'", "field": "location_id"}
    r = client.get("/v1/forecasts/retired-station")  # known, but predict skipped it
    assert r.status_code == 404
    assert "too little history" in r.get_json()["error"]
    r = client.get("/v1/forecasts?location=beijing-dongsi&location=nowhere")
    assert r.status_code == 404 and r.get_json()["field"] == "location"


def test_several_forecasts(client) -> None:
    r = client.get("/v1/forecasts?location=singapore-central&location=beijing-dongsi&hours=3")
    assert r.status_code == 200
    body = r.get_json()
    assert [f["location_id"] for f in body["forecasts"]] == ["singapore-central", "beijing-dongsi"]
    assert all(len(f["points"]) == 3 for f in body["forecasts"])
    every = client.get("/v1/forecasts").get_json()
    assert [f["location_id"] for f in every["forecasts"]] == list(LOCATIONS)
    assert every["skipped"] == {"retired-station": "too little history"}


def test_metrics_come_from_the_snapshot(client) -> None:
    body = client.get("/v1/metrics").get_json()
    assert body["model_version"] == "20261120T0000-abc123"
    acc = body["accuracy"]
    assert [h["horizon_h"] for h in acc["by_horizon"]] == list(range(1, 25))
    assert acc["by_horizon"][0] == {
        "horizon_h": 1,
        "n": 101,
        "mae": 3.2,
        "rmse": 4.3,
        "coverage": 0.795,
        "persistence_mae": 3.95,
        "cams_n": 0,  # no CAMS forecast kept for these hours: none, never zero
        "cams_mae": None,
        "cams_model_mae": None,
    }
    assert acc["by_location"]["beijing-dongsi"] == 4.0


def test_no_snapshot_is_409_json(local_settings, store) -> None:
    c = create_app(local_settings, store).test_client()
    for path in ("/v1/locations", "/v1/forecasts", "/v1/forecasts/x", "/v1/metrics"):
        r = c.get(path)
        assert r.status_code == 409, path
        assert "serving snapshot" in r.get_json()["error"]


def test_snapshot_change_is_picked_up_after_the_refresh_interval(local_settings, store) -> None:
    publish(store, make_snapshot(run_id="run-1", model_version="v1"))
    settings = local_settings.model_copy(update={"api_refresh_seconds": 0.2})
    c = create_app(settings, store).test_client()
    assert c.get("/v1/forecasts/beijing-dongsi").get_json()["model_version"] == "v1"
    publish(store, make_snapshot(run_id="run-2", model_version="v2"))
    # within the interval the cached snapshot answers (no store read per lookup)
    assert c.get("/v1/forecasts/beijing-dongsi").get_json()["model_version"] == "v1"
    deadline = dt.datetime.now() + dt.timedelta(seconds=5)
    while c.get("/health").get_json()["model_version"] != "v2":
        assert dt.datetime.now() < deadline, "snapshot change not picked up"
    assert c.get("/v1/forecasts/beijing-dongsi").get_json()["model_version"] == "v2"


class CountingStore(LocalStore):
    """The local store, counting the objects it reads whole."""

    reads = 0

    def get_with_generation(self, key: str) -> tuple[bytes, int]:
        self.reads += 1
        return super().get_with_generation(key)


def test_offsets_are_held_like_the_snapshot(local_settings: Settings) -> None:
    """Online predictions read the published offsets and weights once per change, not once per
    call; a corrupt object keeps the last good offsets, and with none held is a 503."""
    store = CountingStore(Path(local_settings.home) / "counted")
    key = intervals_key("pm2_5", "pm2_5")
    cache = OffsetsCache(store, refresh_seconds=0)
    assert cache.get(key) is None  # predict has published none yet
    first = Adaptation(Offsets((0.1, 0.2), (0.3, 0.4), ISSUED))
    store.put_json(key, first.offsets.to_json())
    assert [cache.get(key) for _ in range(5)] == [first] * 5
    assert store.reads == 1  # unchanged generation: checked, not read again
    second = Adaptation(Offsets((0.0, 0.0), (0.5, 0.6), ISSUED))
    store.put_json(key, second.offsets.to_json())
    assert cache.get(key) == second and store.reads == 2
    held = OffsetsCache(store, refresh_seconds=3600)
    assert held.get(key) == second
    store.put_json(key, first.offsets.to_json())
    assert held.get(key) == second  # within the refresh interval: no store request at all
    store.put(key, b"{not json")
    assert cache.get(key) == second  # a failed read keeps what is held
    with pytest.raises(AircastError) as exc:
        OffsetsCache(store, refresh_seconds=0).get(key)
    assert http_status(exc.value) == 503


def test_corrupt_snapshot_keeps_the_last_good_one(local_settings, store) -> None:
    publish(store, make_snapshot(model_version="good"))
    settings = local_settings.model_copy(update={"api_refresh_seconds": 0})
    c = create_app(settings, store).test_client()
    assert c.get("/v1/forecasts/beijing-dongsi").status_code == 200
    store.put(SNAPSHOT_KEY, b'{"not": "a snapshot"}')
    r = c.get("/v1/forecasts/beijing-dongsi")
    assert r.status_code == 200 and r.get_json()["model_version"] == "good"
    health = c.get("/health").get_json()
    assert health["status"] == "degraded" and "refresh failed" in health["reason"]
    fresh = create_app(settings, store).test_client()  # nothing cached: 503, not a 500
    r = fresh.get("/v1/locations")
    assert r.status_code == 503 and "unreadable" in r.get_json()["error"]


def test_models_current(client, store) -> None:
    r = client.get("/v1/models/current")
    assert r.status_code == 409
    assert "no production model" in r.get_json()["error"]
    metadata = promote(store, version="20261120T0000-abc123")
    body = client.get("/v1/models/current").get_json()
    assert body["version"] == "20261120T0000-abc123"
    assert body["promoted_at"] == "2026-11-20T01:00:00Z"
    assert body["metadata"] == metadata.to_json()


PREDICT_BODY = {
    "location_id": "beijing-dongsi",
    "observations": [
        {"ts": f"2026-11-20T{h:02d}:00:00Z", "pm2_5": 30.0 + h, "pm10": 50.0, "temperature_2m": 3.0}
        for h in range(12)
    ],
    "hours": 6,
}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "observations"),
        ({"observations": []}, "observations"),
        ({"observations": [{"pm2_5": 3}]}, "observations.0.ts"),
        ({"observations": [{"ts": "yesterday", "pm2_5": 3}]}, "observations.0.ts"),
        ({"observations": [{"ts": "2026-11-20T00:00Z", "pm2_5": -5}]}, "observations.0.pm2_5"),
        ({"observations": [{"ts": "2026-11-20T00:00Z", "colour": 1}]}, "observations.0.colour"),
        ({**PREDICT_BODY, "hours": 0}, "hours"),
        ({**PREDICT_BODY, "hours": 1000}, "hours"),
        (
            {**PREDICT_BODY, "weather_forecasts": [{"ts": "2026-11-21T00:00Z", "pm2_5": 1}]},
            "weather_forecasts.0.pm2_5",
        ),
    ],
)
def test_predict_bad_body_is_400_naming_the_field(client, body, field) -> None:
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 400
    assert r.get_json()["field"] == field


@pytest.mark.parametrize("data", ["not json", "[1, 2]", ""])
def test_predict_non_object_body_is_400(client, data) -> None:
    r = client.post("/v1/predict", data=data, content_type="application/json")
    assert r.status_code == 400 and r.get_json()["field"] == "body"


def test_predict_without_production_model_is_409(client) -> None:
    r = client.post("/v1/predict", json=PREDICT_BODY)
    assert r.status_code == 409
    assert "no model in production" in r.get_json()["error"]


def test_predict_for_an_unknown_location_is_404_naming_it(client, local_settings, store) -> None:
    r = client.post("/v1/predict", json={**PREDICT_BODY, "location_id": "nowhere"})
    assert r.status_code == 404 and r.get_json()["field"] == "location_id"
    assert "unknown location 'nowhere'" in r.get_json()["error"]
    store.delete(SNAPSHOT_KEY)  # nothing published: the location cannot be known yet
    fresh = create_app(local_settings, store).test_client()
    r = fresh.post("/v1/predict", json=PREDICT_BODY)
    assert r.status_code == 404 and "no forecasts published yet" in r.get_json()["error"]


def test_unknown_route_and_method_are_json(client) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and "error" in r.get_json()
    r = client.get("/v1/predict")
    assert r.status_code == 405 and "error" in r.get_json()
    assert r.headers["Allow"] == "POST"
    r = client.post("/v1/forecasts/beijing-dongsi")
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    r = client.head("/v1/forecasts/beijing-dongsi")
    assert r.status_code == 200 and r.data == b""
    assert client.get("/v1/forecasts/").status_code == 404


def test_openapi_is_generated_from_the_models(client) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    for name in (
        "OnlinePredictRequest",
        "Observation",
        "LocationForecastResponse",
        "ErrorResponse",
    ):
        assert name in schemas
    assert schemas["Observation"]["properties"]["pm2_5"]["anyOf"][0]["maximum"] == 1500
    refs = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert refs and all(r.removeprefix("#/components/schemas/") in schemas for r in refs)
    assert set(doc["paths"]) == {
        "/health",
        "/v1/locations",
        "/v1/forecasts",
        "/v1/forecasts/{location_id}",
        "/v1/predict",
        "/v1/models/current",
        "/v1/metrics",
        "/v1/aqi",
        "/v1/places",
    }
    # Every error status it advertises is one that some AircastError answers.
    operations = [op for path in doc["paths"].values() for op in path.values()]
    advertised = {int(code) for op in operations for code in op["responses"]}

    def statuses(cls: type[AircastError]) -> set[int]:
        own = http_status(RunFailed({}) if cls is RunFailed else cls("x"))
        return {own}.union(*(statuses(sub) for sub in cls.__subclasses__()))

    assert advertised - {200} <= statuses(AircastError)


def test_dashboard_is_self_contained(client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "/v1/forecasts?hours=1" in html and "?observations=true" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    # The one address off the api: OpenStreetMap's tiles, requested only when the person
    # ticks the street map (tests/serving/test_api_dashboard.py checks both ways).
    assert re.findall(r"https://[^\s`\"']+", html) == ["https://tile.openstreetmap.org/${z}/${((x"]
    assert "@import" not in html and '<link rel="stylesheet' not in html


def test_entry_point_through_functions_framework(monkeypatch, local_settings, store) -> None:
    """The deployed entry point: functions-framework's app routes every path to `api`."""
    use_settings(monkeypatch, local_settings)
    publish(store, make_snapshot())
    app = functions_framework.create_app("api", str(ROOT / "functions" / "api" / "main.py"))
    c = app.test_client()
    assert c.get("/v1/forecasts/beijing-dongsi?hours=2").get_json()["points"][1]["horizon_h"] == 2
    assert c.get("/v1/forecasts/nowhere").status_code == 404
    assert c.post("/v1/predict", json={"observations": []}).status_code == 400
    # A path Werkzeug's router refuses (a newline in the id) is JSON too, not an HTML page.
    r = c.get("/v1/forecasts/a%0Ab")
    assert r.status_code == 404 and r.is_json and "error" in r.get_json()


def test_cold_import_is_light() -> None:
    """Importing the entry point loads no pandas, numpy, xgboost, duckdb or BigQuery client."""
    code = (
        "import sys, runpy; runpy.run_path('functions/api/main.py');"
        "heavy = [m for m in ('pandas', 'numpy', 'xgboost', 'duckdb', 'google.cloud.bigquery',"
        " 'google.cloud.storage', 'sklearn', 'pyarrow') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_aircast_serve_defaults_to_the_api_and_stops_on_sigterm(tmp_path) -> None:
    """`aircast serve` (no function named) serves the api; `kill` stops its children too."""
    import os
    import signal

    import requests

    from common.scheduling.stack import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRCAST_")}
    env["AIRCAST_HOME"] = str(tmp_path / "home")
    aircast = Path(sys.executable).with_name("aircast")
    proc = subprocess.Popen(
        [str(aircast), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split() == ["api", f"http://127.0.0.1:{port}"]
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["status"] == "degraded" and "no serving snapshot" in health["reason"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_stored_status_that_cannot_be_read_is_logged_with_its_traceback(
    client, store, caplog: pytest.LogCaptureFixture
) -> None:
    store.put(STATUS_KEY, b'{"status": "fine", "as_of": "later"}')  # no such state, no time
    with caplog.at_level(logging.ERROR):
        body = client.get("/health").get_json()
    assert body["model_version"] and body["pipeline"] is None  # /health still answers
    logged = [r for r in caplog.records if STATUS_KEY in r.getMessage()]
    assert logged and logged[0].exc_info is not None and logged[0].exc_info[0] is ValidationError
