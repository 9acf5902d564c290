"""At-least-once delivery on BigQuery: two instances of one scheduled predict, and of one
scheduled ingest, running at once leave what users read unchanged.

Each instance is a thread with its own Services (its own BigQuery and GCS clients), as two
Cloud Run instances would be, against bqemulator and gcp-storage-emulator. The raw tables
(`forecasts`, `observations_raw`, `runs`) may hold a duplicate; no view may.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from common.core.config import Settings, load_settings
from common.ingest.job import IngestRequest, run_ingest
from common.predict.job import PredictRequest, run_predict
from common.runtime.services import Services
from common.storage import open_store
from common.warehouse import open_warehouse
from tests.predict.test_predict import H, T
from tests.views import duplicates

pytestmark = pytest.mark.emulator


def _services(settings: Settings) -> Services:
    return Services(settings, open_warehouse(settings), open_store(settings))


def _twice(settings: Settings, run: Callable[[Services], dict[str, Any]]) -> list[dict]:
    """`run` in two threads at once, each with its own clients."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda _: run(_services(settings)), range(2)))


def test_two_concurrent_ingests_and_predicts_leave_the_views_unchanged(
    trained: Path,
    gcp_settings: Settings,
) -> None:
    svc = _services(gcp_settings)
    svc.warehouse.ensure_schema()
    for key in svc.store.list(""):  # the emulator's bucket is shared by the session's tests
        svc.store.delete(key)
    local = open_store(load_settings(backend="local", home=trained))
    for key in local.list("models/"):
        svc.store.put(key, local.get(key))
    run_ingest(IngestRequest(start=T - dt.timedelta(days=3), end=T, source="synthetic"), svc)

    scheduled = T + dt.timedelta(hours=1)  # the next hourly ingest, delivered twice
    ingests = _twice(
        gcp_settings, lambda s: run_ingest(IngestRequest(as_of=scheduled, source="synthetic"), s)
    )
    assert [a["status"] for a in ingests] == ["success", "success"]
    predicts = _twice(gcp_settings, lambda s: run_predict(PredictRequest(as_of=scheduled), s))
    assert [a["status"] for a in predicts] == ["success", "success"]

    wh = svc.warehouse
    assert duplicates(wh) == dict.fromkeys(duplicates(wh), 0)
    n_loc = len(wh.query("SELECT DISTINCT location_id FROM current_locations"))
    latest = wh.query(
        "SELECT COUNT(*) AS n FROM latest_forecasts WHERE issued_at = @t", {"t": scheduled}
    )
    assert latest["n"].iloc[0] == n_loc * H
    runs = wh.query("SELECT status, COUNT(*) AS n FROM run_status GROUP BY status")
    assert dict(zip(runs["status"], runs["n"], strict=True)) == {"success": 5}
    # Both runs answer the same forecasts: same model, same issue time.
    assert {a["model_version"] for a in predicts} == {predicts[0]["model_version"]}
