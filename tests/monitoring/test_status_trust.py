"""The status sees what happened, by the wall clock too: a run killed with any as_of is
lost within its deadline, a running one shows as running with its age, a caller's 4xx is
a refused request counted apart from failures; the snapshot condition names stale and
missing locations, and alerts on a snapshot dated after now."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from common.core.config import Settings
from common.core.timeutil import floor_hour
from common.forecasting.snapshot import SNAPSHOT_KEY, StaleForecast
from common.monitoring import conditions
from common.runtime.services import Services
from common.storage import open_store
from common.warehouse import open_warehouse
from tests.api_fixtures import LOCATIONS, make_snapshot, publish

NOW = dt.datetime.now(dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def svc(local_settings: Settings) -> Services:
    s = Services(local_settings, open_warehouse(local_settings), open_store(local_settings))
    s.warehouse.ensure_schema()
    return s


def _run(svc: Services, run_id: str, function: str, as_of: dt.datetime, **row: object) -> None:
    base = {
        "run_id": run_id,
        "function": function,
        "as_of": as_of,
        "status": "running",
        "started_at": NOW - HOUR,
        "finished_at": None,
        "deadline_at": NOW - HOUR + dt.timedelta(minutes=30),
        "counts": "{}",
        "error": None,
        "params": "{}",
    }
    svc.warehouse.append("runs", pd.DataFrame([base | row]))


def test_a_run_killed_with_another_as_of_is_lost_at_wall_clock_now(svc: Services):
    _run(svc, "ingest-old-1", "ingest", dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    runs = conditions.runs(svc, floor_hour(NOW)).to_json()
    ingest = runs["functions"]["ingest"]
    assert ingest["lost"] == 1 and ingest["failed"] == 1, runs
    assert "1 lost" in runs["detail"]


def test_a_running_run_shows_as_running_with_its_age(svc: Services):
    _run(
        svc,
        "train-now-1",
        "train",
        floor_hour(NOW),
        started_at=NOW - dt.timedelta(minutes=10),
        deadline_at=NOW + dt.timedelta(minutes=20),
    )
    runs = conditions.runs(svc, floor_hour(NOW)).to_json()
    train = runs["functions"]["train"]
    assert train["running"] == 1 and 9 <= train["running_for_min"] <= 60, train
    assert "1 running" in runs["detail"]


def test_a_refused_request_is_counted_apart_from_failures(svc: Services):
    as_of = floor_hour(NOW)
    _run(svc, "train-409-1", "train", as_of)
    _run(
        svc,
        "train-409-1",
        "train",
        as_of,
        status="refused",
        finished_at=NOW - HOUR,
        error="Conflict: cannot tune: not enough history",
    )
    train = conditions.runs(svc, as_of).to_json()["functions"]["train"]
    assert train["refused"] == 1 and train["failed"] == 0 and train["unrecovered"] == 0


def test_the_snapshot_condition_names_stale_and_missing_locations(svc: Services):
    issued = floor_hour(NOW)
    snap = make_snapshot(issued_at=issued, skipped=(LOCATIONS[0], "retired-station"))
    snap = snap.model_copy(
        update={"stale": [StaleForecast(location_id=LOCATIONS[0], issued_at=issued - HOUR)]}
    )
    publish(svc.store, snap)
    found = conditions.snapshot(svc, issued).to_json()
    assert found["stale"] == 1 and found["missing"] == 1, found
    assert found["state"] == "warn"
    assert "1 locations served a stale forecast, 1 missing" in found["detail"]


def test_a_snapshot_dated_after_now_is_an_alert(svc: Services):
    future = floor_hour(NOW) + dt.timedelta(days=6)
    publish(svc.store, make_snapshot(issued_at=future, skipped=()))
    found = conditions.snapshot(svc, floor_hour(NOW)).to_json()
    assert found["state"] == "alert" and "dated after now" in found["detail"], found
    assert json.loads(svc.store.get(SNAPSHOT_KEY))["issued_at"].startswith(str(future.year))
