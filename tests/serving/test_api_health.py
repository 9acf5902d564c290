"""/health and /v1/metrics carry the health conditions the monitor stored (health/status.json),
read from the bucket: the api never opens the warehouse."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from common.monitoring import STATUS_KEY
from common.storage.local import LocalStore
from tests.api_fixtures import served_api

STATUS = {
    "status": "alert",
    "as_of": "2026-11-20T00:00:00Z",
    "conditions": [
        {"name": "freshness", "state": "ok", "detail": "all 3 within 3 h", "value": 1.0},
        {"name": "snapshot", "state": "alert", "detail": "9 h old", "value": 9.0, "unit": "hours"},
    ],
}


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_health_and_metrics_carry_the_stored_conditions(tmp_path: Path):
    home = tmp_path / "home"
    with served_api(home) as url:
        assert get(url + "/health")["pipeline"] is None  # before the monitor stored any
        LocalStore(home / "artifacts").put_json(STATUS_KEY, STATUS)
        for route in ("/health", "/v1/metrics"):
            pipeline = get(url + route)["pipeline"]
            assert pipeline["status"] == "alert"
            assert [(c["name"], c["state"]) for c in pipeline["conditions"]] == [
                ("freshness", "ok"),
                ("snapshot", "alert"),
            ]
            assert pipeline["conditions"][1]["unit"] == "hours"
