"""The api's share of the caller-error rules: an oversized body is a 413 naming the limit
and a time outside the accepted range a 400 naming the field, on every route."""

from __future__ import annotations

from common.core.config import Settings
from common.serving.api import create_app
from common.storage import open_store
from tests.api_fixtures import make_snapshot, publish


def _client(settings: Settings):
    store = open_store(settings)
    publish(store, make_snapshot())
    return create_app(settings, store).test_client()


def test_an_oversized_body_is_a_413_naming_the_limit(local_settings: Settings) -> None:
    settings = local_settings.model_copy(update={"max_request_bytes": 4096})
    client = _client(settings)
    for path in ("/v1/predict", "/health"):
        r = client.post(path, data=b"x" * 5000, content_type="application/json")
        assert r.status_code == 413, (path, r.data)
        assert r.get_json()["field"] == "body" and "4096 bytes" in r.get_json()["error"]
    ok = client.post("/v1/predict", json={"observations": []})  # small: validated as usual
    assert ok.status_code == 400


def test_an_observation_time_outside_the_range_is_a_400(local_settings: Settings) -> None:
    client = _client(local_settings)
    for ts in ("0001-01-01T00:00:00Z", "9999-12-31T23:00:00Z", "0001-01-01T00:00:00+05:00"):
        r = client.post("/v1/predict", json={"observations": [{"ts": ts, "pm2_5": 10.0}]})
        assert r.status_code == 400, (ts, r.data)
        assert r.get_json()["field"] == "observations.0.ts"
