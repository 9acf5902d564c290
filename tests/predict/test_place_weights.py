"""Each place's own combination weights in predict: stepped per shard on the place's own
verified forecasts from the network's, stored by issue time, served in batch rows, the
snapshot and online predictions alike."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.core.schema import VARIABLES
from common.core.timeutil import UTC
from common.forecasting.combination import EXPERTS, LOSS_CAP, horizon_groups, regret_bound
from common.forecasting.place_weights import OFFSET_COLS, PLACE_HEAD_START, WEIGHT_COLS
from common.forecasting.snapshot import SNAPSHOT_KEY, Snapshot
from common.predict.job import PredictRequest, run_predict
from common.runtime.services import get_services
from tests.predict.test_predict import H, T, _env, location_ids, sql

HOUR = dt.timedelta(hours=1)
# Runs every 6 hours from T - 42 h to T + 24 h: each verifies the 6 hours since the last.
RUNS = [T + k * 6 * HOUR for k in range(-7, 5)]
STUCK_VALUE = 3.0


def _stick(loc: str, start: dt.datetime) -> None:
    """`loc`'s sensor reads STUCK_VALUE from `start` on (a correction ingested later, which
    the observations view serves): there persistence is exact and the model loses."""
    rows = sql("SELECT * FROM observations WHERE location_id = @loc AND ts >= @t", loc=loc, t=start)
    rows = rows.assign(pm2_5=STUCK_VALUE, run_id="stuck", ingested_at=dt.datetime.now(UTC))
    get_services().warehouse.append("observations_raw", rows)


def _replay(times: list[dt.datetime]) -> dict:
    answer: dict = {}
    for t in times:
        answer = run_predict(PredictRequest(as_of=t), get_services())
        assert answer["status"] in ("success", "partial"), answer
    return answer


def _states(at: dt.datetime | None = None) -> pd.DataFrame:
    rows = sql("SELECT * FROM place_combination_weights ORDER BY as_of, location_id, horizon_group")
    if at is not None:
        rows = rows[pd.to_datetime(rows["as_of"], utc=True) == pd.Timestamp(at)]
    return rows


def _network(at: dt.datetime) -> pd.DataFrame:
    """The network's weights served at `at` (horizon x expert)."""
    rows = sql("SELECT * FROM combination_weights WHERE as_of = @t", t=at)
    return rows.pivot_table(index="horizon_h", columns="expert", values="weight")


def _recombined(rows: pd.DataFrame, weights: np.ndarray) -> np.ndarray:
    """The served median recomputed from the experts' values and `weights` (n, N): the
    weighted mean in log1p units of the model's own median, the value at the issue hour
    and the value a day before the target hour."""
    x = np.column_stack(
        [np.log1p(rows[c].clip(lower=0)) for c in ("yhat_model", "persisted", "seasonal")]
    )
    return np.expm1((x * weights).sum(axis=1) / weights.sum(axis=1))


def _served(at: dt.datetime) -> pd.DataFrame:
    """The forecasts issued at `at` with each expert's value beside them."""
    return sql(
        "SELECT f.location_id, f.horizon_h, f.target_ts, f.yhat, f.yhat_model, "
        "p.pm2_5 AS persisted, s.pm2_5 AS seasonal, a.pm2_5 AS actual FROM forecasts f "
        "JOIN observations p ON p.location_id = f.location_id AND p.ts = f.issued_at "
        "JOIN observations s ON s.location_id = f.location_id "
        "AND s.ts = TIMESTAMP_SUB(f.target_ts, INTERVAL 24 HOUR) "
        "LEFT JOIN observations a ON a.location_id = f.location_id AND a.ts = f.target_ts "
        "WHERE f.issued_at = @t ORDER BY f.location_id, f.horizon_h",
        t=at,
    )


def _group_weights(states: pd.DataFrame, loc: str, h: np.ndarray) -> np.ndarray:
    mine = states[states["location_id"] == loc].set_index("horizon_group")[WEIGHT_COLS]
    names = [f"{a}-{b}" for a, b in horizon_groups(H) for _ in range(a, b + 1)]
    return mine.loc[[names[k - 1] for k in h]].to_numpy(float)


def _online(loc: str, at: dt.datetime, col: str = "yhat") -> list[float]:
    """POST /v1/predict with `loc`'s stored observations of the 72 h up to `at`: each
    point's `col`."""
    from common.serving.api import create_app

    svc = get_services()
    obs = sql(
        "SELECT * FROM observations WHERE location_id = @loc AND ts > @start AND ts <= @t",
        loc=loc,
        start=at - 72 * HOUR,
        t=at,
    )
    body = {
        "location_id": loc,
        "observations": [
            {"ts": r["ts"].isoformat()} | {v: r[v] for v in VARIABLES if pd.notna(r[v])}
            for r in obs.to_dict("records")
        ],
    }
    r = create_app(svc.settings, svc.store).test_client().post("/v1/predict", json=body)
    assert r.status_code == 200, r.get_json()
    return [p[col] for p in r.get_json()["points"]]


def test_a_place_where_the_model_loses_is_served_persistence_while_the_others_keep_it(
    home: Path,
):
    """A stuck sensor (persistence exact, the model wrong) comes to serve the baselines in
    every horizon group within its regret bound, while the other places keep the model as
    the network does; the batch rows serve the stored weights of each place, the snapshot
    carries them and the api's online forecast for the place equals the batch one; a re-run
    of the last hour stores nothing and changes nothing."""
    ids = location_ids()
    stuck, other = ids[0], ids[1]
    _stick(stuck, T - 5 * 24 * HOUR)
    answer = _replay(RUNS)
    last = RUNS[-1]
    states = _states(last)
    assert set(states["location_id"]) == set(ids)  # every place has a state of its own
    assert set(states["horizon_group"]) == {"1-3", "4-12", "13-24"}
    by = states.set_index(["location_id", "horizon_group"])
    model = "weight_model"
    net = _network(last)["model"]
    for g in ("1-3", "4-12", "13-24"):
        a, b = (int(x) for x in g.split("-"))
        assert by.loc[(other, g), model] > 0.5, (g, by.loc[other])  # it keeps the model
        assert by.loc[(stuck, g), model] < net.loc[a:b].min(), (g, by.loc[stuck])
    # Where a group's evidence accrues fast (9-12 forecasts an hour) the model is all but
    # dropped; at 1-3 h (3 forecasts an hour, each a small error) it falls run by run.
    assert by.loc[(stuck, "4-12"), model] < 0.05 and by.loc[(stuck, "13-24"), model] < 0.05
    early = _states()
    early = early[(early["location_id"] == stuck) & (early["horizon_group"] == "1-3")]
    assert early["weight_model"].is_monotonic_decreasing and len(early) == len(RUNS) - 1
    assert early["weight_model"].iloc[-1] < 0.75 * early["weight_model"].iloc[0]

    # What was served: the stuck place's last value, the other place its own blend; each
    # row is its place's stored weights applied to the experts' values.
    rows = _served(last)
    at = rows[(rows["location_id"] == stuck) & (rows["horizon_h"] > 3)]
    assert np.allclose(at["yhat"], STUCK_VALUE, rtol=0.05), at["yhat"].tolist()
    assert not np.allclose(at["yhat_model"], STUCK_VALUE, rtol=0.05)
    for loc in (stuck, other):
        mine = rows[rows["location_id"] == loc]
        w = _group_weights(states, loc, mine["horizon_h"].to_numpy())
        assert np.allclose(mine["yhat"], _recombined(mine, w), rtol=1e-3, atol=1e-3), loc

    # Within the regret bound per place and group, from the place's start on.
    start = pd.to_datetime(states["started_at"], utc=True).max()
    issued = sql(
        "SELECT f.location_id, f.issued_at, f.target_ts, f.horizon_h, f.yhat, f.yhat_model, "
        "a.pm2_5 AS actual, p.pm2_5 AS persisted, s.pm2_5 AS seasonal FROM forecasts f "
        "JOIN observations a ON a.location_id = f.location_id AND a.ts = f.target_ts "
        "JOIN observations p ON p.location_id = f.location_id AND p.ts = f.issued_at "
        "JOIN observations s ON s.location_id = f.location_id "
        "AND s.ts = TIMESTAMP_SUB(f.target_ts, INTERVAL 24 HOUR) "
        "WHERE f.issued_at >= @start AND a.pm2_5 IS NOT NULL",
        start=start,
    )
    y = np.log1p(issued["actual"].clip(lower=0))
    for name, col in (
        ("served", "yhat"),
        ("model", "yhat_model"),
        ("persistence", "persisted"),
        ("seasonal_naive", "seasonal"),
    ):
        issued[name] = np.minimum(np.abs(np.log1p(issued[col].clip(lower=0)) - y), LOSS_CAP)
    checked = 0
    for loc in (stuck, other):
        for a, b in horizon_groups(H):
            g = issued[(issued["location_id"] == loc) & issued["horizon_h"].between(a, b)]
            hourly = g.groupby("target_ts")[["served", *EXPERTS]].sum()
            best = hourly[list(EXPERTS)].sum().min()
            bound = regret_bound(len(hourly), b - a + 1, head_start=PLACE_HEAD_START)
            assert hourly["served"].sum() <= best + bound, (loc, a, b)
            checked += 1
    mine = issued[issued["location_id"] == stuck]
    assert mine["served"].sum() < 0.5 * mine["model"].sum()  # it learned: far below the model
    assert checked == 6

    # The stuck place's band never missed (the value it serves is the one observed): its
    # own offsets narrowed it, by ACI's step on each hour's share of misses.
    groups = ["1-3", "4-12", "13-24"]
    assert (by.loc[stuck].loc[groups, OFFSET_COLS].to_numpy(float) < 0).all(), by.loc[stuck]

    # The snapshot carries each place's weights and offsets; the api serves the place
    # with them: the same median and the same band as the batch rows.
    snap = Snapshot.model_validate_json(get_services().store.get(SNAPSHOT_KEY))
    assert snap.combination is not None and snap.combination.experts == list(EXPERTS)
    assert np.allclose(
        snap.combination.weights[stuck], by.loc[stuck].loc[groups, WEIGHT_COLS].to_numpy(float)
    )
    assert np.allclose(
        snap.combination.offsets[stuck], by.loc[stuck].loc[groups, OFFSET_COLS].to_numpy(float)
    )
    bands = sql(
        "SELECT location_id, horizon_h, yhat, yhat_lower, yhat_upper FROM forecasts "
        "WHERE issued_at = @t ORDER BY location_id, horizon_h",
        t=last,
    )
    for loc in (stuck, other):
        mine = bands[bands["location_id"] == loc]
        for col in ("yhat", "yhat_lower", "yhat_upper"):
            assert _online(loc, last, col) == pytest.approx(mine[col].tolist(), abs=2e-3), col

    # Idempotent: the last hour again stores no state and serves the same rows.
    stored = _states()
    before = sql("SELECT * FROM forecasts ORDER BY location_id, issued_at, horizon_h")
    again = run_predict(PredictRequest(as_of=last), get_services())
    assert again["counts"]["written"] == 0 and answer["counts"] == {
        **again["counts"],
        "written": answer["counts"]["written"],
    }
    pd.testing.assert_frame_equal(_states(), stored)
    after = sql("SELECT * FROM forecasts ORDER BY location_id, issued_at, horizon_h")
    pd.testing.assert_frame_equal(before, after)
    snap_again = Snapshot.model_validate_json(get_services().store.get(SNAPSHOT_KEY))
    assert snap_again.combination == snap.combination


def test_a_new_place_is_served_the_network_weights_then_its_own(home: Path):
    """A location added once the others have their own weights: its first forecasts are
    served the network's weights (no state, none in the snapshot, the online forecast
    the same), then, once its forecasts are verified, its own, started at that hour."""
    ids = location_ids()
    _replay(RUNS[:4])
    svc = get_services()
    source = sql("SELECT * FROM current_locations WHERE location_id = @i", i=ids[1])
    new = "new-place"
    svc.warehouse.append(
        "locations",
        source.assign(
            location_id=new, name="New place", latitude=source["latitude"] + 0.3,
            updated_at=dt.datetime.now(UTC),
        ),
    )  # fmt: skip
    obs = sql("SELECT * FROM observations WHERE location_id = @i", i=ids[1])
    svc.warehouse.append(
        "observations_raw",
        obs.assign(location_id=new, pm2_5=STUCK_VALUE, ingested_at=dt.datetime.now(UTC)),
    )
    first = RUNS[4]
    _replay([first])
    assert new not in set(_states(first)["location_id"])
    rows = _served(first)
    mine = rows[rows["location_id"] == new]
    assert len(mine) >= H - 3  # (bar the hours whose seasonal value is missing)
    net = _network(first)[list(EXPERTS)].loc[mine["horizon_h"]].to_numpy()
    assert np.allclose(mine["yhat"], _recombined(mine, net), rtol=1e-3, atol=1e-3)
    snap = Snapshot.model_validate_json(svc.store.get(SNAPSHOT_KEY))
    assert snap.combination is not None and new not in snap.combination.weights
    assert ids[1] in snap.combination.weights
    batch = sql("SELECT yhat FROM forecasts WHERE location_id = @i AND issued_at = @t "
                "ORDER BY horizon_h", i=new, t=first)["yhat"].tolist()  # fmt: skip
    assert _online(new, first) == pytest.approx(batch, abs=2e-3)

    _replay(RUNS[5:])
    states = _states()
    own = states[states["location_id"] == new]
    assert len(own) and set(pd.to_datetime(own["started_at"], utc=True)) == {pd.Timestamp(RUNS[5])}
    last = own[pd.to_datetime(own["as_of"], utc=True) == pd.Timestamp(RUNS[-1])]
    net_last = _network(RUNS[-1])["model"]
    mine = last.set_index("horizon_group")["weight_model"]
    for a, b in horizon_groups(H):  # its own evidence (a stuck sensor) moved it off the model
        assert mine[f"{a}-{b}"] < net_last.loc[a:b].mean(), (mine, net_last)
    rows = _served(RUNS[-1])
    mine = rows[rows["location_id"] == new]
    w = _group_weights(_states(RUNS[-1]), new, mine["horizon_h"].to_numpy())
    assert np.allclose(mine["yhat"], _recombined(mine, w), rtol=1e-3, atol=1e-3)


def test_place_weights_do_not_see_data_after_the_issue_time(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The state a run stores is the same whether or not later observations exist: a copy
    of the warehouse cut at the run's issue time (nothing observed, forecast or stepped
    after it) steps the same weights and serves the same rows."""
    _stick(location_ids()[0], T - 5 * 24 * HOUR)
    runs = RUNS[:5]
    _replay(runs)
    full = _states(runs[-1])
    forecasts = _served(runs[-1])

    cut = tmp_path / "cut"
    shutil.copytree(home, cut)
    _env(monkeypatch, cut)
    svc = get_services()
    ds = svc.settings.dataset
    t = runs[-1]
    with svc.warehouse.connect() as con:  # as it was just before the last run
        con.execute(f"DELETE FROM {ds}.observations_raw WHERE ts > ?", [t])
        con.execute(f"DELETE FROM {ds}.forecasts WHERE issued_at >= ?", [t])
        for table in ("place_combination_weights", "combination_weights", "interval_offsets"):
            con.execute(f"DELETE FROM {ds}.{table} WHERE as_of >= ?", [t])
        con.execute("DELETE FROM main.aircast_deliveries")
    _replay([t])
    again = _states(t)
    cols = ["location_id", "horizon_group", *WEIGHT_COLS, "loss_model", "gap", *OFFSET_COLS]
    pd.testing.assert_frame_equal(
        full[cols].reset_index(drop=True), again[cols].reset_index(drop=True)
    )
    cut_rows = _served(t)
    pd.testing.assert_series_equal(cut_rows["yhat"], forecasts["yhat"])
    assert (full[OFFSET_COLS].to_numpy(float) != 0).any()  # the offsets were stepped
