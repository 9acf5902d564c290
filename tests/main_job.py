"""The main job end to end, shared by the two backends' tests (tests/test_e2e.py on DuckDB
and a folder, tests/test_e2e_emulators.py on BigQuery and GCS through their emulators,
only the configuration changed): the five functions served by functions-framework on
loopback ports, the local Cloud Scheduler replaying 30 hours of their schedules over HTTP
on a simulated clock, then the warehouse, the registry and the api checked against each
other. 30 hours hold two daily trains (03:40) after the first, and forecasts of every
horizon up to 24 h are verified before the end (48 hours checked nothing more). Two
files, so that `make test`'s workers run the two long replays side by side.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import requests

from common.core.config import Settings
from common.forecasting.registry import Registry
from common.monitoring.status import CONDITIONS
from common.runtime.services import get_services
from common.scheduling import stack as localstack
from common.scheduling.local import HttpInvoker, replay
from tests.conftest import use_settings
from tests.train.test_train import TRAIN_ENV

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
END = dt.datetime(2024, 3, 2, 5, 59, tzinfo=dt.UTC)
LAST = dt.datetime(2024, 3, 2, 5, tzinfo=dt.UTC)  # as_of of the last hourly run
HOURS = 30  # hourly runs from START to LAST
H = 24


def replay_and_check(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    use_settings(monkeypatch, settings)
    for key, value in TRAIN_ENV.items():
        monkeypatch.setenv(key, value)
    svc = get_services()
    svc.warehouse.ensure_schema()  # what `aircast init` (or Terraform) does once
    for key in svc.store.list(""):  # the emulator's bucket is shared by the session's tests
        svc.store.delete(key)
    functions = ["ingest", "train", "predict", "monitor", "api"]
    with localstack.serve(functions, port=0, home=settings.home) as urls:
        summary = replay(
            HttpInvoker(urls, backoff=0.2),
            START,
            END,
            {"ingest": {"source": "synthetic"}},
            warmup=dt.timedelta(days=35),
        )
        failures = [(a.schedule, a.as_of, a.status_code, a.answer) for a in summary.failures]
        assert not failures
        runs = summary.by_function()
        assert runs["ingest"]["runs"] == 1 + HOURS and runs["predict"]["runs"] == HOURS
        assert runs["train"]["runs"] == 1 + 2 and runs["monitor"]["runs"] == HOURS

        wh = svc.warehouse
        ids = sorted(wh.query("SELECT DISTINCT location_id FROM locations")["location_id"])
        obs = wh.query(
            "SELECT location_id, MAX(ts) AS last, COUNT(*) AS n FROM observations "
            "GROUP BY location_id"
        )
        assert sorted(obs["location_id"]) == ids
        # The synthetic sensors have gaps and late hours, as real ones do: every place is
        # current within a few hours, the network up to the last scheduled hour.
        assert obs["last"].max() == pd.Timestamp(LAST)
        assert (obs["last"] >= pd.Timestamp(LAST) - pd.Timedelta(hours=6)).all()
        assert (obs["n"] > 35 * 20).all()

        pointer, _ = Registry(svc.store, svc.settings.model_name).production()
        assert pointer is not None
        versions = {k.split("/")[2] for k in svc.store.list("models/") if k.count("/") == 3}
        assert pointer.version in versions

        # Every predict run forecast every location (or skipped it with a reason) x 24 h.
        per_run = wh.query(
            "SELECT issued_at, location_id, COUNT(*) AS n, COUNT(DISTINCT horizon_h) AS h, "
            "MIN(horizon_h) AS h1 FROM forecasts GROUP BY issued_at, location_id"
        )
        predicts = [a for a in summary.attempts if a.function == "predict"]
        for attempt in predicts:
            rows = per_run[per_run["issued_at"] == pd.Timestamp(attempt.as_of)]
            skipped = {s["location_id"] for s in attempt.answer["skipped"]}
            assert sorted(set(rows["location_id"]) | skipped) == ids, attempt.as_of
            assert set(rows["n"]) == {H} and set(rows["h"]) == {H} and set(rows["h1"]) == {1}
        assert per_run["issued_at"].nunique() == HOURS

        accuracy = wh.query(
            "SELECT horizon_h, COUNT(*) AS n FROM forecast_accuracy GROUP BY horizon_h"
        )
        assert len(accuracy) == H and (accuracy["n"] > 0).all()

        # The api answers the forecast that latest_forecasts holds for the last issue time.
        loc = ids[0]
        latest = wh.query(
            "SELECT horizon_h, yhat, yhat_lower, yhat_upper, model_version FROM latest_forecasts "
            "WHERE location_id = @loc AND issued_at = @t ORDER BY horizon_h",
            {"loc": loc, "t": LAST},
        )
        r = requests.get(f"{urls['api']}/v1/forecasts/{loc}", timeout=30)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["issued_at"].startswith("2024-03-02T05:00")
        assert answer["model_version"] == latest["model_version"].iloc[0] == pointer.version
        for col in ("yhat", "yhat_lower", "yhat_upper"):
            got = [p[col] for p in answer["points"]]
            assert got == pytest.approx(latest[col].tolist(), abs=1e-3)
        health = requests.get(f"{urls['api']}/health", timeout=30).json()
        assert health["model_version"] == pointer.version
        # the monitor's last scheduled run stored the status the api reports
        assert health["pipeline"]["as_of"] == "2024-03-02T05:00:00Z"
        assert [c["name"] for c in health["pipeline"]["conditions"]] == list(CONDITIONS)
