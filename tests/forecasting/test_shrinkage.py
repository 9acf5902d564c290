"""Per-horizon safety: the shrinkage toward the last value is learned on calibration rows
only, pulls a horizon where the booster loses to persistence toward it, keeps intervals
calibrated, and loads as 1 for versions written before it existed."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from common.core.schema import POLLUTANTS, WEATHER
from common.forecasting import model as model_mod
from common.forecasting.features import FeatureSpec
from common.forecasting.model import ForecastModel
from common.forecasting.training import IssueWindow, TrainingData, fit_model

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PLACES = pd.DataFrame(
    {
        "location_id": ["a", "b", "c"],
        "latitude": [40.0, 40.1, 40.3],
        "longitude": [116.0, 116.1, 116.2],
        "timezone": ["Asia/Shanghai"] * 3,
    }
)


def smooth_observations(days: int = 40, seed: int = 0) -> pd.DataFrame:
    """Persistent (AR(1) in log space, with a daily cycle) series: like real pollution, the
    last value is a strong forecast at short horizons."""
    rng = np.random.default_rng(seed)
    n = days * 24
    ts = pd.date_range(T0, periods=n, freq="h")
    frames = []
    for k, loc in enumerate(PLACES["location_id"]):
        x = np.zeros(n)
        for i in range(1, n):
            x[i] = 0.95 * x[i - 1] + rng.normal(0, 0.15)
        cycle = 0.3 * np.sin(2 * np.pi * (np.arange(n) + 3 * k) / 24)
        f = pd.DataFrame({"location_id": loc, "ts": ts})
        for col in (*POLLUTANTS, *WEATHER):
            f[col] = rng.gamma(2.0, 20.0, n)
        f["pm2_5"] = np.exp(3.5 + x + cycle)
        f["wind_direction_10m"] = rng.uniform(0, 360, n)
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def toy_rows(n: int, rng: np.random.Generator, h1_moves: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """Two horizons; the change is 0.5 x at h=2, and at h=1 too unless `h1_moves` is False
    (then h=1 does not move: "the last value" is the best forecast there)."""
    h = rng.integers(1, 3, n)
    x = rng.normal(0, 1, n)
    X = pd.DataFrame({"level": np.log1p(50.0), "horizon_h": h, "x": x})
    y = 0.5 * x + rng.normal(0, 0.1, n)
    if not h1_moves:
        y = np.where(h == 1, rng.normal(0, 0.1, n), y)
    return X, y.astype(np.float32)


def test_a_horizon_where_the_booster_loses_to_persistence_is_shrunk_toward_it():
    rng = np.random.default_rng(0)
    m = ForecastModel(["level", "horizon_h", "x"], 2, {**model_mod.DEFAULT_PARAMS, "nthread": 1})
    X, y = toy_rows(4000, rng, h1_moves=True)
    Xv, yv = toy_rows(800, rng, h1_moves=True)
    m.fit(X, y, Xv, yv)
    Xc, yc = toy_rows(2000, rng, h1_moves=False)  # the world changed at h=1
    raw_h1 = np.abs(m.raw(Xc)[:, 1] - yc)[Xc["horizon_h"] == 1].mean()
    pers_h1 = np.abs(yc)[Xc["horizon_h"] == 1].mean()
    assert raw_h1 > pers_h1  # the raw booster is worse than persistence at h=1
    m.calibrate(Xc, yc)
    assert m.shrink[0] < 0.3 and m.shrink[1] >= 0.9
    # Intervals are calibrated after shrinkage: ~80% coverage at each horizon on new rows.
    Xt, yt = toy_rows(4000, rng, h1_moves=False)
    q = m.predict_change(Xt)
    covered = (yt >= q[:, 0]) & (yt <= q[:, 2])
    for k in (1, 2):
        assert covered[Xt["horizon_h"] == k].mean() == pytest.approx(0.8, abs=0.05)
    # The served median is now not worse than persistence at h=1.
    h1 = (Xt["horizon_h"] == 1).to_numpy()
    assert np.abs(q[h1, 1] - yt[h1]).mean() <= np.abs(yt[h1]).mean() * 1.01


def test_an_old_version_without_shrinkage_loads_with_alpha_one():
    rng = np.random.default_rng(3)
    m = ForecastModel(["level", "horizon_h", "x"], 2, {**model_mod.DEFAULT_PARAMS, "nthread": 1})
    X, y = toy_rows(2000, rng, h1_moves=True)
    m.fit(X, y, X, y).calibrate(X, y)
    state = m.state()
    old = {k: v for k, v in state.items() if k != "shrink"}
    m.shrink = []  # as a version written before shrinkage: raw median, same shifts
    loaded = ForecastModel.from_files(m.to_files(), old)
    assert loaded.shrink == []
    np.testing.assert_allclose(loaded.predict_change(X), m.predict_change(X))


def _fit(obs: pd.DataFrame):
    spec = FeatureSpec()
    start = pd.Timestamp(obs["ts"].min()).to_pydatetime() + dt.timedelta(days=7)
    window = IssueWindow(start, start + dt.timedelta(days=24), 6000)
    captured: dict[str, np.ndarray] = {}
    original = model_mod.learn_shrinkage

    def spy(change, y, h, level, horizon):
        captured["y"] = np.asarray(y).copy()
        return original(change, y, h, level, horizon)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_mod, "learn_shrinkage", spy)
        fit = fit_model(TrainingData(obs, spec, PLACES), window, {"nthread": 1})
    return fit, captured["y"], window


def test_shrinkage_is_learned_on_calibration_rows_only():
    obs = smooth_observations()
    fit, y_seen, window = _fit(obs)
    assert len(fit.model.shrink) == 24 and all(0.0 <= a <= 1.0 for a in fit.model.shrink)
    assert len(y_seen) == fit.rows["calibration"]  # it saw the calibration block, no more
    cal_start = pd.Timestamp(fit.blocks["calibration"][0])
    ts = pd.to_datetime(obs["ts"], utc=True)

    # Rows after the window (the holdout's) changed: the same fit, the same alphas.
    later = obs.copy()
    later.loc[ts > pd.Timestamp(window.end), "pm2_5"] *= 3.0
    again, _, _ = _fit(later)
    assert again.model.shrink == fit.model.shrink

    # Calibration rows changed (fit and validation blocks untouched): other alphas.
    moved = obs.copy()
    cal = (ts > cal_start + pd.Timedelta(hours=24)) & (ts <= pd.Timestamp(window.end))
    noise = np.random.default_rng(9).lognormal(0, 0.8, int(cal.sum()))
    moved.loc[cal, "pm2_5"] = moved.loc[cal, "pm2_5"].to_numpy() * noise
    other, _, _ = _fit(moved)
    assert other.model.best_iterations == fit.model.best_iterations  # same boosters
    assert other.model.shrink != fit.model.shrink
