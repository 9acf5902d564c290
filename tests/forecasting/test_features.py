"""The feature code train and predict share: no leakage, explicit missing history, and
the same rows whether built for training or for serving."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from common.core.schema import POLLUTANTS, WEATHER
from common.forecasting import features
from common.forecasting.examples import AsIssuedRows, training_examples
from common.forecasting.features import FeatureSpec, future_from_grid, serving_features
from common.forecasting.grid import MAX_ANCHOR_AGE, Grid
from common.forecasting.model import ForecastModel

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
ISSUE = T0 + dt.timedelta(days=6, hours=7)
PLACES = pd.DataFrame(
    {
        "location_id": ["a", "b", "c"],
        "latitude": [40.0, 40.1, 10.0],
        "longitude": [116.0, 116.1, 100.0],
        "timezone": ["Asia/Shanghai", "Asia/Shanghai", "UTC"],
    }
)


def observations(days: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range(T0, periods=days * 24, freq="h")
    frames = []
    for loc in PLACES["location_id"]:
        f = pd.DataFrame({"location_id": loc, "ts": ts})
        for col in (*POLLUTANTS, *WEATHER):
            f[col] = rng.gamma(2.0, 20.0, len(ts))
        f["wind_direction_10m"] = rng.uniform(0, 360, len(ts))
        frames.append(f)
    obs = pd.concat(frames, ignore_index=True)
    return obs.sample(frac=0.97, random_state=seed).reset_index(drop=True)  # some gaps


def forecasts(obs: pd.DataFrame) -> pd.DataFrame:
    """Weather forecasts issued at ISSUE for the next day: the future weather input."""
    fut = obs[(obs["ts"] > ISSUE) & (obs["ts"] <= ISSUE + dt.timedelta(hours=24))]
    return fut[["location_id", "ts", *WEATHER]].copy()


@pytest.mark.parametrize("future_weather", [False, True])
def test_features_at_t_ignore_every_value_after_t(future_weather: bool):
    spec = FeatureSpec(future_weather=future_weather)
    obs = observations()
    fc = forecasts(obs)
    X, keys, skipped = serving_features(obs, ISSUE, spec, PLACES, fc)

    later = obs["ts"] > ISSUE
    perturbed = obs.copy()
    cols = [*POLLUTANTS, *WEATHER]
    perturbed.loc[later, cols] = perturbed.loc[later, cols] * 7.0 + 3.0
    extra = perturbed[later].assign(ts=lambda f: f["ts"] + dt.timedelta(days=30))
    perturbed = pd.concat([perturbed, extra], ignore_index=True)
    X2, keys2, skipped2 = serving_features(perturbed, ISSUE, spec, PLACES, fc)

    assert len(X) == 3 * 24 and skipped == skipped2 == []
    pd.testing.assert_frame_equal(X, X2)
    pd.testing.assert_frame_equal(keys, keys2)
    # And the perturbation does reach features when it is at or before t.
    early = obs["ts"] == ISSUE
    touched = obs.copy()
    touched.loc[early, "pm2_5"] = touched.loc[early, "pm2_5"] * 5
    X3, _, _ = serving_features(touched, ISSUE, spec, PLACES, fc)
    assert not X3.equals(X)


def test_training_rows_equal_serving_rows_for_the_same_issue_time():
    """Training places the forecasts as issued by the rule predict uses: with the same
    weather and CAMS forecasts issued at t, training and serving rows are identical."""
    spec = FeatureSpec(future_weather=True, cams=True)
    obs = observations()
    fc = forecasts(obs)
    cams = fc[["location_id", "ts"]].assign(issued_at=ISSUE, pm2_5=np.linspace(5, 50, len(fc)))
    kept = AsIssuedRows(weather=fc.assign(issued_at=ISSUE), cams=cams)
    X, y, keys = training_examples(obs, spec, ISSUE, ISSUE, PLACES, 10_000, as_issued=kept)
    assert X["f_cams"].notna().all() and X["f_temperature_2m"].notna().all()
    assert set(keys["weather_kind"]) == {"as-issued"} and keys["cams"].notna().all()
    Xs, keys_s, _ = serving_features(obs, ISSUE, spec, PLACES, fc, cams=cams)
    merged = keys.reset_index().merge(
        keys_s.reset_index(), on=["location_id", "horizon_h"], suffixes=("_t", "_s")
    )
    assert len(merged) == len(keys) > 0
    a = X.iloc[merged["index_t"]].reset_index(drop=True)
    b = Xs.iloc[merged["index_s"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    # Targets are log changes from the anchor, which persistence uses as its forecast.
    np.testing.assert_allclose(np.expm1(keys["level"] + y), keys["actual"], rtol=1e-4, atol=1e-3)
    # Read straight from the observations: persistence is the last pm2_5 at or before the
    # issue time, the actual the pm2_5 observed at the target hour.
    seen = obs.dropna(subset=["pm2_5"]).astype({"location_id": str, "ts": "datetime64[ns, UTC]"})
    rows = keys.astype(
        {"location_id": str, "issued_at": "datetime64[ns, UTC]", "target_ts": "datetime64[ns, UTC]"}
    ).reset_index()
    last = pd.merge_asof(
        rows.sort_values("issued_at"),
        seen.sort_values("ts")[["location_id", "ts", "pm2_5"]],
        left_on="issued_at",
        right_on="ts",
        by="location_id",
    ).sort_values("index")
    np.testing.assert_allclose(keys["persistence"], last["pm2_5"], rtol=1e-9)
    at_target = rows.merge(
        seen, left_on=["location_id", "target_ts"], right_on=["location_id", "ts"], how="left"
    )
    np.testing.assert_allclose(keys["actual"], at_target["pm2_5"], rtol=1e-9)


def test_missing_history_is_skipped_with_a_reason_and_stays_nan():
    spec = FeatureSpec(future_weather=False)
    obs = observations()
    # b: nothing in the last MAX_ANCHOR_AGE + 1 hours; c: only a few values in 24 h.
    gap_b = (obs["location_id"] == "b") & (
        obs["ts"] > ISSUE - dt.timedelta(hours=MAX_ANCHOR_AGE + 1)
    )
    thin_c = (
        (obs["location_id"] == "c")
        & (obs["ts"] > ISSUE - dt.timedelta(hours=24))
        & (obs["ts"].dt.hour % 3 != 0)
    )
    _X, keys, skipped = serving_features(obs[~gap_b & ~thin_c], ISSUE, spec, PLACES)
    reasons = dict(skipped)
    assert set(reasons) == {"b", "c"}
    assert "no pm2_5 observation" in reasons["b"] and "need 12" in reasons["c"]
    assert set(keys["location_id"]) == {"a"}
    # A missing lag is NaN, never a silent zero.
    a = obs[obs["location_id"] == "a"]
    hole = a[a["ts"] != ISSUE - dt.timedelta(hours=2)]
    X2, keys2, _ = serving_features(hole, ISSUE, spec, PLACES)
    assert set(keys2["location_id"]) == {"a"}
    assert X2["lag_2"].isna().all()
    assert X2["lag_1"].notna().all() or not (a["ts"] == ISSUE - dt.timedelta(hours=1)).any()


def test_a_saved_and_loaded_model_predicts_identically():
    spec = FeatureSpec(future_weather=True)
    obs = observations(days=12)
    start, end = T0 + dt.timedelta(days=3), T0 + dt.timedelta(days=9)
    X, y, _ = training_examples(obs, spec, start, end, PLACES, max_rows=20_000)
    Xv, yv, _ = training_examples(
        obs, spec, end + dt.timedelta(days=1), end + dt.timedelta(days=2), PLACES, 5_000
    )
    model = ForecastModel(spec.columns(), spec.horizon)
    model.fit(X, y, Xv, yv, max_rounds=30).calibrate(Xv, yv)
    loaded = ForecastModel.from_files(model.to_files(), model.state())
    Xs, _, _ = serving_features(obs, ISSUE, spec, PLACES, forecasts(obs))
    np.testing.assert_array_equal(model.predict(Xs), loaded.predict(Xs))
    q = loaded.predict(Xs)
    assert (q[:, 0] <= q[:, 1]).all() and (q[:, 1] <= q[:, 2]).all() and (q >= 0).all()


def test_future_weather_from_grid_is_the_target_hour():
    spec = FeatureSpec()
    obs = observations()
    from common.forecasting.features import grid_columns

    grid = Grid.from_frame(obs, T0, T0 + dt.timedelta(days=9), ["a", "b", "c"], grid_columns(spec))
    t = np.array([100])
    fut = future_from_grid(grid, np.array([0]), t, 24)
    want = obs[(obs["location_id"] == "a") & (obs["ts"] == T0 + dt.timedelta(hours=105))]
    assert fut["temperature_2m"].shape == (1, 24)
    if want.empty:  # that hour is one of the random gaps
        assert np.isnan(fut["temperature_2m"][0, 4])
    else:
        assert fut["temperature_2m"][0, 4] == pytest.approx(want["temperature_2m"].iloc[0])


def test_anchors_are_computed_once_however_many_locations_are_skipped(
    monkeypatch: pytest.MonkeyPatch,
):
    """The skip reasons read the one `anchors()` of the whole grid (10,000 locations with
    many skipped would otherwise be quadratic)."""
    calls: list[str] = []
    real = features.anchors

    def counted(grid: Grid, target: str) -> tuple[np.ndarray, np.ndarray]:
        calls.append(target)
        return real(grid, target)

    monkeypatch.setattr(features, "anchors", counted)
    spec = FeatureSpec(future_weather=False)
    obs = observations()
    serving_features(obs, ISSUE, spec, PLACES)
    none_skipped = len(calls)
    unobserved = pd.DataFrame(
        {
            "location_id": [f"quiet-{i}" for i in range(40)],
            "latitude": np.linspace(-60, 60, 40),
            "longitude": 20.0,
            "timezone": "UTC",
        }
    )
    calls.clear()
    _X, keys, skipped = serving_features(obs, ISSUE, spec, pd.concat([PLACES, unobserved]))
    assert len(skipped) == 40 and set(keys["location_id"]) == {"a", "b", "c"}
    assert len(calls) == none_skipped <= 2
