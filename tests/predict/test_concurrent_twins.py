"""Twin predicts of one issue time running at once (each read what was forecast before any
wrote) leave one copy of each forecast and of each interval offset (interval_offsets is
queried directly in docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

import common.predict.job as predict_job
from common.predict.job import PredictRequest, run_predict
from common.runtime.services import get_services
from tests.ingest.test_concurrent_deliveries import TWINS, _in_step, _twins
from tests.predict.test_predict import T


def test_concurrent_twin_predicts_leave_one_copy(home: Path, monkeypatch):
    _in_step(monkeypatch, predict_job, "already_forecast", TWINS)
    _twins(TWINS, lambda: run_predict(PredictRequest(as_of=T), get_services()))
    wh = get_services().warehouse
    forecasts = wh.query("SELECT location_id, target, target_ts FROM forecasts")
    assert len(forecasts) and not forecasts.duplicated().any()
    offsets = wh.query("SELECT target, as_of, horizon_h FROM interval_offsets")
    assert not offsets.duplicated().any(), offsets
