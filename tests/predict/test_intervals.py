"""Adaptive interval offsets: the update rule, and predict stepping, storing and serving them
(batch rows, re-runs, the as_of bound, the api's online predictions)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.forecasting.adaptation import MAX_OFFSET, TAIL, VERIFY_LAG_H, Offsets
from common.predict.job import PredictRequest, run_predict
from common.runtime import services
from common.runtime.services import get_services
from common.serving.api import create_app
from tests.predict.test_predict import H, T, location_ids, online_body, sql

HOUR = dt.timedelta(hours=1)
ETA = 0.05


def _verified(rows: list[tuple[int, int, int, int]], start: dt.datetime) -> pd.DataFrame:
    """(hour index, horizon, n, below, above) -> the frame `Offsets.step` reads."""
    return pd.DataFrame(
        [
            {"target_ts": start + i * HOUR, "horizon_h": h, "n": n, "below": b, "above": a}
            for i, h, n, b, a in rows
        ]
    )


def test_offsets_move_by_eta_times_the_miss_share_beyond_the_nominal_tail():
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    start = Offsets.zero(3)
    verified = _verified(
        [
            (0, 1, 10, 1, 1),  # h=1 misses exactly 10% each side: no change
            (0, 2, 10, 0, 5),  # h=2: nothing below, half above
            (1, 2, 10, 0, 5),
            (0, 3, 0, 0, 0),  # nothing verified: no change
        ],
        t0,
    )
    after = start.step(verified, ETA, t0 + HOUR)
    assert after.lower[0] == pytest.approx(0.0) and after.upper[0] == pytest.approx(0.0)
    assert after.lower[1] == pytest.approx(2 * ETA * (0 - TAIL))  # narrows a little
    assert after.upper[1] == pytest.approx(2 * ETA * (0.5 - TAIL))  # widens
    assert after.lower[2] == 0.0 and after.upper[2] == 0.0
    assert after.verified_through == t0 + HOUR

    # Clipped, so a target whose interval can never cover stays bounded.
    worst = _verified([(i, 1, 4, 4, 4) for i in range(1000)], t0)
    assert Offsets.zero(1).step(worst, ETA, t0).upper == (MAX_OFFSET,)

    # Stored and published forms round-trip; a model of another horizon keeps what it
    # shares with the stored one, and new horizons start at 0.
    assert Offsets.from_json(after.to_json()) == after
    assert Offsets.from_rows(after.rows(), 3) == after
    assert Offsets.from_rows(after.rows(), 2).lower == after.lower[:2]
    assert Offsets.from_rows(after.rows(), 4).upper == (*after.upper, 0.0)


def _state(as_of: dt.datetime) -> pd.DataFrame:
    return sql(
        "SELECT * FROM interval_offsets WHERE as_of = @t ORDER BY horizon_h, created_at", t=as_of
    )


def _expected(first: dt.datetime, as_of: dt.datetime) -> tuple[np.ndarray, np.ndarray]:
    """The offsets at `as_of`, recomputed here from the stored forecasts and observations:
    starting at 0 after the first run, each hour up to as_of - VERIFY_LAG_H in time order."""
    f = sql("SELECT * FROM forecasts WHERE target = 'pm2_5'")
    o = sql("SELECT location_id, ts AS target_ts, pm2_5 AS actual FROM observations")
    j = f.merge(o, on=["location_id", "target_ts"]).dropna(subset=["actual"])
    j = j[(j["target_ts"] > pd.Timestamp(first - VERIFY_LAG_H * HOUR))]
    j = j[j["target_ts"] <= pd.Timestamp(as_of - VERIFY_LAG_H * HOUR)]
    lo, hi = np.zeros(H), np.zeros(H)
    for (_, h), g in j.groupby(["target_ts", "horizon_h"], sort=True):
        lo[h - 1] += ETA * ((g["actual"] < g["yhat_lower"]).mean() - TAIL)
        hi[h - 1] += ETA * ((g["actual"] > g["yhat_upper"]).mean() - TAIL)
    return lo, hi


@pytest.fixture
def hourly(home: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Predict every hour from T - 12 h to T with a large step, after planting observations
    later than T - VERIFY_LAG_H that would count as misses if a run read them."""
    monkeypatch.setenv("AIRCAST_INTERVAL_ADAPT_ETA", str(ETA))
    services.reset()
    late = sql(
        "SELECT * FROM observations WHERE ts > @a AND ts <= @b",
        a=T - VERIFY_LAG_H * HOUR,
        b=T + 24 * HOUR,
    )
    late = late.assign(pm2_5=late["pm2_5"] * 50 + 500, run_id="late", ingested_at=T + 30 * HOUR)
    get_services().warehouse.append("observations_raw", late)
    return [
        run_predict(PredictRequest(as_of=T - k * HOUR), get_services()) for k in range(12, -1, -1)
    ]


def test_predict_steps_offsets_from_verified_forecasts_and_serves_them(hourly: list[dict]):
    first, last = hourly[0], hourly[-1]
    assert first["status"] == "success", first
    assert first["targets"]["pm2_5"]["intervals"]["lower"] == [0.0] * H  # nothing verified yet
    state = _state(T)
    assert len(state) == H and state["verified_through"].eq(T - VERIFY_LAG_H * HOUR).all()
    lo, hi = _expected(T - 12 * HOUR, T)
    assert state["lower_offset"].to_numpy() == pytest.approx(lo, abs=1e-9)
    assert state["upper_offset"].to_numpy() == pytest.approx(hi, abs=1e-9)
    assert np.abs(hi).max() > 0  # something was verified and moved them
    # (the planted later observations, all far above p90, would have moved them further)
    assert last["targets"]["pm2_5"]["intervals"]["upper"] == pytest.approx(list(hi), abs=1e-6)

    # The served bounds are the version's bounds moved out by the offsets, in log units.
    served = sql(
        "SELECT * FROM forecasts WHERE issued_at = @t ORDER BY location_id, horizon_h", t=T
    )
    plain = _batch_without_offsets()
    m = served.merge(plain, on=["location_id", "horizon_h"], suffixes=("", "_plain"))
    assert m["yhat"].to_numpy() == pytest.approx(m["yhat_plain"].to_numpy(), rel=1e-6)
    inner = (m["yhat_lower_plain"] > 0) & (m["yhat_lower"] < m["yhat"])
    k = m["horizon_h"].to_numpy() - 1
    got = np.log1p(m["yhat_lower_plain"]) - np.log1p(m["yhat_lower"])
    assert got[inner].to_numpy() == pytest.approx(lo[k][inner.to_numpy()], abs=1e-4)
    outer = m["yhat_upper"] > m["yhat"]
    got = np.log1p(m["yhat_upper"]) - np.log1p(m["yhat_upper_plain"])
    assert got[outer].to_numpy() == pytest.approx(hi[k][outer.to_numpy()], abs=1e-4)


def _batch_without_offsets() -> pd.DataFrame:
    """What the production model forecasts at T with the version's calibration alone (and
    the combination weights served at T, the network's and the places' own, which the
    offsets do not touch)."""
    from common.forecasting.combination import Weights
    from common.forecasting.forecast import forecast_frame
    from common.forecasting.place_weights import PlaceWeights
    from common.forecasting.registry import Registry
    from common.predict.reads import read_recent
    from common.runtime import locations

    svc = get_services()
    loaded = Registry.of_target(svc.store, svc.settings, "pm2_5").load_production()
    spec = loaded.metadata.feature_spec()
    places = locations.current(svc.warehouse)
    weights = Weights.from_rows(sql("SELECT * FROM combination_weights WHERE as_of = @t", t=T), H)
    obs = read_recent(svc, spec, T)
    own = sql("SELECT * FROM place_combination_weights WHERE as_of = @t", t=T)
    frame, _ = forecast_frame(
        loaded, obs, T, places, None, weights=weights, place_weights=PlaceWeights.from_rows(own, H)
    )
    return frame[["location_id", "horizon_h", "yhat", "yhat_lower", "yhat_upper"]]


def test_a_rerun_serves_the_same_offsets_and_online_predictions_apply_them(hourly: list[dict]):
    svc = get_services()
    before = _state(T)
    rows = sql("SELECT * FROM forecasts WHERE issued_at = @t ORDER BY location_id, horizon_h", t=T)
    again = run_predict(PredictRequest(as_of=T), svc)
    assert again["counts"]["written"] == 0
    assert again["targets"]["pm2_5"]["intervals"] == {
        **hourly[-1]["targets"]["pm2_5"]["intervals"],
        "published": again["targets"]["pm2_5"]["intervals"]["published"],
    }
    pd.testing.assert_frame_equal(_state(T), before)  # stepped once per issue time

    # An older issue time re-run (a backfill) keeps its own state and never replaces the
    # newer published offsets.
    older = run_predict(PredictRequest(as_of=T - 3 * HOUR), svc)
    assert older["targets"]["pm2_5"]["intervals"]["published"]["written"] is False

    # POST /v1/predict with the same history answers the batch rows, offsets included.
    loc = location_ids()[0]
    _, body = online_body(loc)
    r = create_app(svc.settings, svc.store).test_client().post("/v1/predict", json=body)
    assert r.status_code == 200, r.get_json()
    batch = rows[rows["location_id"] == loc]
    for col in ("yhat", "yhat_lower", "yhat_upper"):
        online = [p[col] for p in r.get_json()["points"]]
        assert online == pytest.approx(batch[col].tolist(), abs=2e-3)


def test_eta_zero_serves_the_calibrated_interval_and_stores_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRCAST_INTERVAL_ADAPT_ETA", "0")
    services.reset()
    for k in (2, 1, 0):
        answer = run_predict(PredictRequest(as_of=T - k * HOUR), get_services())
        assert "intervals" not in answer["targets"]["pm2_5"]
    assert sql("SELECT COUNT(*) AS n FROM interval_offsets")["n"].iloc[0] == 0
    served = sql("SELECT * FROM forecasts WHERE issued_at = @t", t=T)
    plain = _batch_without_offsets()
    m = served.merge(plain, on=["location_id", "horizon_h"], suffixes=("", "_plain"))
    for col in ("yhat_lower", "yhat_upper"):
        assert m[col].to_numpy() == pytest.approx(m[f"{col}_plain"].to_numpy(), rel=1e-6)
