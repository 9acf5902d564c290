"""Predict as N shards on DuckDB: the same rows as one unsharded run (also in small batches,
where a batch reads its neighbours), one snapshot part per shard that the api serves by the
location's hash, and a shard killed mid-run that leaves every other part (and its own last
good part) served."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common.core.errors import BadRequest
from common.core.sharding import shard_of, shards_to_run
from common.forecasting.neighbours import neighbour_matrix
from common.forecasting.snapshot import SNAPSHOT_KEY, Snapshot, snapshot_key
from common.predict.job import PredictRequest, run_predict
from common.runtime import locations as locations_mod
from common.runtime import services
from common.runtime.services import get_services
from common.serving.api import create_app
from common.warehouse.base import Warehouse
from tests.predict.test_predict import T, _env, location_ids, sql

ROOT = Path(__file__).resolve().parents[2]
ROW_COLS = ["location_id", "target", "issued_at", "target_ts", "horizon_h", "model_version"]
VALUES = ["yhat", "yhat_lower", "yhat_upper"]
SHARDS = 4  # the six synthetic places fall in every one of 4 shards


def _forecasts() -> pd.DataFrame:
    rows = sql("SELECT * FROM forecasts")
    return rows[ROW_COLS + VALUES].sort_values(["location_id", "horizon_h"]).reset_index(drop=True)


def _copy(home: Path, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / name
    shutil.copytree(home, target)
    _env(monkeypatch, target)
    return target


def test_the_shard_of_a_location_is_stable_and_spreads():
    ids = [f"station-{i}" for i in range(3000)]
    shards = [shard_of(i, 10) for i in ids]
    assert shards == [shard_of(i, 10) for i in ids]  # the same answer every time
    # Pinned: the rule must never change under a deployment (sha256, not the salted hash()).
    assert shard_of("beijing-dongsi", 10) == 7
    counts = pd.Series(shards).value_counts()
    assert set(counts.index) == set(range(10)) and counts.min() > 250  # about 300 each
    assert {shard_of(i, 1) for i in ids} == {0}


def test_a_request_names_a_valid_shard_or_none():
    assert shards_to_run(None, None, 1) == ([0], 1)
    assert shards_to_run(None, None, 4) == ([0, 1, 2, 3], 4)  # a manual run: every shard
    assert shards_to_run(2, None, 4) == ([2], 4)
    assert shards_to_run(1, 2, 4) == ([1], 2)
    assert shards_to_run(None, 2, 4) == ([0, 1], 2)  # `shards` alone: every one of them
    for shard, shards, field in ((4, None, "shard"), (0, 300, "shards")):
        with pytest.raises(BadRequest) as err:
            shards_to_run(shard, shards, 4)
        assert err.value.field == field


def _cluster_locations() -> None:
    """Move the synthetic locations within 100 km of each other (they are continents apart),
    so that every location has neighbours, some of them in other shards."""
    warehouse = get_services().warehouse
    places = locations_mod.current(warehouse)
    moved = places[locations_mod.COLUMNS].assign(
        latitude=places["latitude"].iloc[0] + 0.1 * np.arange(len(places)),
        longitude=places["longitude"].iloc[0],
        updated_at=dt.datetime.now(dt.UTC),
    )
    warehouse.append("locations", moved)


def test_sharded_and_batched_runs_write_exactly_the_unsharded_rows(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _cluster_locations()
    shutil.copytree(home, tmp_path / "sharded")  # the same warehouse, before any forecast
    whole = run_predict(PredictRequest(as_of=T), get_services())
    expected = _forecasts()
    full = Snapshot.model_validate_json(get_services().store.get(SNAPSHOT_KEY))
    ids = location_ids()
    places = sql("SELECT * FROM current_locations")
    nb = neighbour_matrix(ids, places)
    crossing = [
        (ids[i], ids[j])
        for i, j in zip(*nb.nonzero(), strict=True)
        if shard_of(ids[i], SHARDS) != shard_of(ids[j], SHARDS)
    ]
    assert crossing, "the test needs neighbours in other shards (regional features)"
    assert len({shard_of(i, SHARDS) for i in ids}) == SHARDS

    _env(monkeypatch, tmp_path / "sharded")
    monkeypatch.setenv("AIRCAST_PREDICT_SHARDS", str(SHARDS))
    monkeypatch.setenv("AIRCAST_PREDICT_BATCH_LOCATIONS", "2")  # several batches per shard
    services.reset()
    answers = [
        run_predict(PredictRequest(as_of=T, shard=k, shards=SHARDS), get_services())
        for k in range(SHARDS)
    ]
    assert [a["counts"]["written"] for a in answers] == [
        sum(shard_of(i, SHARDS) == k for i in ids) * 24 for k in range(SHARDS)
    ]
    pd.testing.assert_frame_equal(_forecasts(), expected)  # bit-for-bit the same forecasts
    # Each shard's batches are one append (one load job on BigQuery: what bounds the shards).
    appends = sql("SELECT run_id, COUNT(DISTINCT created_at) AS n FROM forecasts GROUP BY run_id")
    assert len(appends) == SHARDS and (appends["n"] == 1).all(), appends
    assert sum(a["counts"]["forecasts"] for a in answers) == whole["counts"]["forecasts"]

    store = get_services().store
    assert not store.exists(SNAPSHOT_KEY)  # N shards publish N parts, not the one object
    merged: dict[str, object] = {}
    for k in range(SHARDS):
        part = Snapshot.model_validate_json(store.get(snapshot_key(k, SHARDS)))
        assert (part.shard, part.shards, part.issued_at) == (k, SHARDS, T)
        assert {loc.location_id for loc in part.locations} == {
            i for i in ids if shard_of(i, SHARDS) == k
        }
        merged |= part.forecasts
        for i in part.forecasts:
            assert part.observations[i] == full.observations[i]
    assert merged == full.forecasts

    # A re-run of one shard writes nothing (idempotent per shard).
    again = run_predict(PredictRequest(as_of=T, shard=1, shards=SHARDS), get_services())
    assert again["counts"]["written"] == 0
    pd.testing.assert_frame_equal(_forecasts(), expected)

    # The api serves each location from its part, and every location from all parts.
    client = create_app(get_services().settings, store).test_client()
    listed = client.get("/v1/locations").get_json()["locations"]
    assert sorted(loc["location_id"] for loc in listed) == ids
    for i in ids:
        body = client.get(f"/v1/forecasts/{i}").get_json()
        assert [p["yhat"] for p in body["points"]] == full.forecasts[i].yhat
    every = client.get("/v1/forecasts").get_json()["forecasts"]
    assert sorted(f["location_id"] for f in every) == ids
    assert client.get("/v1/forecasts/nowhere").status_code == 404
    metrics = client.get("/v1/metrics").get_json()
    assert metrics["model_version"] == whole["model_version"]


def test_a_killed_shard_leaves_every_part_served(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _copy(home, tmp_path, "killed", monkeypatch)
    monkeypatch.setenv("AIRCAST_PREDICT_SHARDS", str(SHARDS))
    services.reset()
    for k in range(SHARDS):
        assert run_predict(PredictRequest(as_of=T, shard=k), get_services())["status"] == "success"
    later = T + dt.timedelta(hours=1)
    for k in range(SHARDS):  # every shard but 1 runs the next hour
        if k != 1:
            run_predict(PredictRequest(as_of=later, shard=k), get_services())

    # Shard 1 dies between its forecast rows and its snapshot part (as an OOM kill would).
    env = {**os.environ, "AIRCAST_KILL_AT": "predict:forecasts-written"}
    cmd = [sys.executable, "-m", "common.ops.cli", "predict", "--shard", "1"]
    killed = subprocess.run(
        [*cmd, "--as-of", later.isoformat()], env=env, cwd=ROOT, capture_output=True, timeout=300
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]

    ids = location_ids()
    services.reset()
    client = create_app(get_services().settings, get_services().store).test_client()
    for i in ids:
        body = client.get(f"/v1/forecasts/{i}").get_json()
        expected = T if shard_of(i, SHARDS) == 1 else later
        assert pd.Timestamp(body["issued_at"]) == pd.Timestamp(expected), i
    health = client.get("/health").get_json()
    assert health["locations"] == len(ids) and pd.Timestamp(health["issued_at"]) == T

    # Scheduler's retry of shard 1 completes it: no duplicate rows, every part at `later`.
    retried = run_predict(PredictRequest(as_of=later, shard=1), get_services())
    assert retried["status"] == "success"
    dupes = sql(
        "SELECT location_id, issued_at, horizon_h, COUNT(*) AS n FROM forecasts "
        "GROUP BY location_id, issued_at, horizon_h HAVING COUNT(*) > 1"
    )
    assert dupes.empty
    for k in range(SHARDS):
        part = Snapshot.model_validate_json(get_services().store.get(snapshot_key(k, SHARDS)))
        assert part.issued_at == later


def test_the_network_accuracy_is_computed_once_by_shard_0_and_served_as_one_shard_serves_it(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The snapshot's recent accuracy reads the window's partitions whole whatever the ids
    (shards are hashed): shard 0 computes the network's once a run, the other parts carry
    none, and the api over N parts answers what it answers over one."""
    for hours_back in (72, 48, 24):  # forecasts whose target hours are observed by T
        run_predict(PredictRequest(as_of=T - dt.timedelta(hours=hours_back)), get_services())
    shutil.copytree(home, tmp_path / "sharded")  # the same warehouse, before the run at T
    run_predict(PredictRequest(as_of=T), get_services())
    one = create_app(get_services().settings, get_services().store).test_client()
    expected = one.get("/v1/metrics").get_json()["accuracy"]
    assert expected["network"] and len(expected["by_horizon"]) == 24
    assert len(expected["by_location"]) == len(location_ids())

    _env(monkeypatch, tmp_path / "sharded")
    monkeypatch.setenv("AIRCAST_PREDICT_SHARDS", str(SHARDS))
    services.reset()
    ran: list[tuple[int, str]] = []  # (shard, SQL) of every query, each run for real
    plain = Warehouse.query
    shard_now = [0]

    def counted(self: Warehouse, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        ran.append((shard_now[0], sql))
        return plain(self, sql, params)

    monkeypatch.setattr(Warehouse, "query", counted)
    for k in range(SHARDS):
        shard_now[0] = k
        run_predict(PredictRequest(as_of=T, shard=k), get_services())
    assert [k for k, sql in ran if "GROUPING SETS" in sql] == [0]  # the accuracy query, once
    assert {k for k, _ in ran} == set(range(SHARDS))
    store = get_services().store
    parts = [Snapshot.model_validate_json(store.get(snapshot_key(k, SHARDS))) for k in range(4)]
    assert parts[0].accuracy is not None and parts[0].accuracy.network
    assert [p.accuracy for p in parts[1:]] == [None] * (SHARDS - 1)
    client = create_app(get_services().settings, store).test_client()
    assert client.get("/v1/metrics").get_json()["accuracy"] == expected

    # Shard 0's next run fails: the others move on, the accuracy served is still its last
    # one, labelled by its own window (ending at T), under the newer parts' issue time.
    later = T + dt.timedelta(hours=1)
    for k in range(1, SHARDS):
        run_predict(PredictRequest(as_of=later, shard=k), get_services())
    services.reset()
    client = create_app(get_services().settings, get_services().store).test_client()
    metrics = client.get("/v1/metrics").get_json()
    assert pd.Timestamp(metrics["issued_at"]) == pd.Timestamp(later)
    assert metrics["accuracy"] == expected
    assert pd.Timestamp(metrics["accuracy"]["window_end"]) == pd.Timestamp(T)
