"""The api answers a caller's odd request with a 4xx naming what is wrong, and tells the
truth about what it serves: unknown and repeated query parameters, a 100 kB id, deeply
nested and NUL-laden bodies, TRACE and HEAD, the document's `target` enum, and a snapshot
that is present but unreadable."""

from __future__ import annotations

import flask
import pytest

from common.core.config import Settings
from common.forecasting.snapshot import SNAPSHOT_KEY
from common.serving.api import create_app
from common.storage import open_store
from tests.api_fixtures import LOCATIONS, make_snapshot, publish

LOC = LOCATIONS[0]


@pytest.fixture
def store(local_settings: Settings):
    return open_store(local_settings)


@pytest.fixture
def client(local_settings: Settings, store) -> flask.testing.FlaskClient:
    publish(store, make_snapshot())
    return create_app(local_settings, store).test_client()


@pytest.mark.parametrize(
    ("url", "field"),
    [
        (f"/v1/forecasts/{LOC}?lat=1", "lat"),
        (f"/v1/forecasts/{LOC}?limit=5", "limit"),
        ("/v1/forecasts?hourz=3", "hourz"),
        ("/health?verbose=1", "verbose"),
        (f"/v1/forecasts/{LOC}?hours=1&hours=2", "hours"),
        ("/v1/metrics?target=pm2_5&target=pm10", "target"),
    ],
)
def test_unknown_and_repeated_query_parameters_are_a_400_naming_them(client, url, field):
    r = client.get(url)
    assert r.status_code == 400 and r.json["field"] == field, r.json


def test_documented_parameters_and_lists_still_work(client):
    assert client.get(f"/v1/forecasts/{LOC}?hours=3&observations=true").status_code == 200
    many = client.get(f"/v1/forecasts?location={LOCATIONS[0]}&location={LOCATIONS[1]}")
    assert many.status_code == 200 and len(many.json["forecasts"]) == 2


def test_a_100_kb_id_is_not_echoed_whole(client):
    r = client.get("/v1/forecasts/" + "a" * 100_000)
    assert r.status_code == 404 and len(r.data) < 1000, r.data[:300]


def test_the_online_predict_bounds_its_body(client):
    deep = client.post("/v1/predict", data="[" * 100_000, content_type="application/json")
    assert deep.status_code == 400 and "deeper than" in deep.json["error"], deep.json
    nul = client.post("/v1/predict", json={"location_id": "a\x00b", "observations": []})
    assert nul.status_code == 400 and nul.json["field"] == "location_id", nul.json


def test_trace_is_a_405_with_allow_and_head_answers_where_get_does(client):
    r = client.open(f"/v1/forecasts/{LOC}", method="TRACE")
    assert r.status_code == 405 and r.headers["Allow"] == "GET", r.headers
    assert client.head(f"/v1/forecasts/{LOC}").status_code == 200
    assert client.head("/health").status_code == 200


def test_the_target_enum_is_the_configured_targets(local_settings, store):
    publish(store, make_snapshot())
    doc = create_app(local_settings, store).test_client().get("/openapi.json").json
    params = doc["paths"]["/v1/forecasts/{location_id}"]["get"]["parameters"]
    target = next(p for p in params if p["name"] == "target")
    assert target["schema"]["enum"] == list(local_settings.forecast_targets)


def test_a_corrupt_snapshot_at_start_answers_503_every_time(local_settings, store):
    store.put(SNAPSHOT_KEY, b'{"schema_version": 1, "issued_at": ', "application/json")
    client = create_app(local_settings, store).test_client()
    answers = [client.get(f"/v1/forecasts/{LOC}") for _ in range(3)]
    assert [r.status_code for r in answers] == [503, 503, 503], [r.json for r in answers]
    assert all("unreadable" in r.json["error"] for r in answers)
    assert client.get("/v1/locations").status_code == 503
