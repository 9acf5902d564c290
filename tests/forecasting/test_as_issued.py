"""Forecasts as issued: the one rule (the newest forecast issued at or before the issue
time) in training, on DuckDB and BigQuery alike, and the observed-weather oracle only when
a study names it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from common.core.config import Settings
from common.core.schema import WEATHER
from common.forecasting.as_issued import (
    WarehouseSource,
    coverage,
    place,
    read_cams,
    read_sql,
)
from common.forecasting.examples import AsIssuedRows, training_examples
from common.forecasting.features import FeatureSpec
from common.warehouse import open_warehouse
from tests.forecasting.test_features import PLACES, T0, observations

H = dt.timedelta(hours=1)
START = np.datetime64("2024-01-01T00", "h")


def rows(spec: list[tuple[str, int, int, float]], **extra) -> pd.DataFrame:
    """(location, issued hour, target hour, value) -> forecast rows (hours from T0)."""
    return pd.DataFrame(
        {
            "location_id": [r[0] for r in spec],
            "issued_at": [T0 + r[1] * H for r in spec],
            "ts": [T0 + r[2] * H for r in spec],
            "temperature_2m": [r[3] for r in spec],
            "ingested_at": T0,
            **extra,
        }
    )


def test_each_row_gets_the_newest_forecast_issued_at_or_before_its_issue_time():
    kept = rows(
        [
            ("a", 0, 12, 1.0),  # issued at 0 for 12
            ("a", 5, 12, 2.0),  # a newer issue for 12
            ("a", 11, 12, 3.0),  # issued after t = 10: never seen at t = 10
            ("a", 10, 13, 4.0),
            ("b", 2, 11, 9.0),
        ]
    )
    kept = pd.concat([kept, rows([("a", 5, 12, 2.5)]).assign(ingested_at=T0 + H)])  # a retry
    got = place(
        kept, ["a", "b"], START, np.array([0, 1, 0]), np.array([10, 10, 4]), 3, ["temperature_2m"]
    )
    v = got.values["temperature_2m"]
    np.testing.assert_array_equal(v[0], [np.nan, 2.5, 4.0])  # 11: none; 12: the 5 h issue
    np.testing.assert_array_equal(v[1], [9.0, np.nan, np.nan])
    np.testing.assert_array_equal(v[2], [np.nan] * 3)  # at t = 4 nothing for 5..7
    assert got.kind[0].tolist() == ["", "as-issued", "as-issued"]
    assert coverage(got) == {
        "as-issued": pytest.approx(3 / 9, abs=1e-4),
        "none": pytest.approx(6 / 9, abs=1e-4),
    }
    # An issue at 9:30 is usable from 10, not at 9.
    half = rows([("a", 0, 12, 7.0)]).assign(issued_at=T0 + 9.5 * H)
    at9 = place(half, ["a"], START, np.array([0]), np.array([9]), 3, ["temperature_2m"])
    at10 = place(half, ["a"], START, np.array([0]), np.array([10]), 3, ["temperature_2m"])
    assert np.isnan(at9.values["temperature_2m"]).all()
    assert at10.values["temperature_2m"][0, 1] == 7.0


def test_training_never_uses_observed_weather_at_target_hours_unless_the_study_asks():
    obs = observations()
    issue = T0 + dt.timedelta(days=6)
    default = FeatureSpec(future_weather=True)
    assert default.weather == "as-issued" and Settings().train_weather == "as-issued"
    X, _, keys = training_examples(obs, default, issue, issue, PLACES, 10_000)
    assert X["f_temperature_2m"].isna().all() and set(keys["weather_kind"]) == {"none"}
    issued = obs[obs["ts"] > issue][["location_id", "ts", *WEATHER]].assign(
        issued_at=issue - 6 * H, kind="previous-runs"
    )
    X, _, keys = training_examples(
        obs, default, issue, issue, PLACES, 10_000, as_issued=AsIssuedRows(weather=issued)
    )
    assert X["f_temperature_2m"].notna().any() and "previous-runs" in set(keys["weather_kind"])
    oracle = FeatureSpec(future_weather=True, weather="observed-oracle")
    Xo, _, keys_o = training_examples(obs, oracle, issue, issue, PLACES, 10_000)
    assert Xo["f_temperature_2m"].notna().any() and set(keys_o["weather_kind"]) == {
        "observed-oracle"
    }
    with pytest.raises(ValueError, match="weather must be one of"):
        FeatureSpec(weather="observed")


def test_the_warehouse_read_keeps_every_row_the_rule_can_pick(settings: Settings):
    """`read_sql` drops, in the warehouse, the rows no issue time can pick (at most
    horizon + 1 per hour): placing its rows gives what placing every row gives (DuckDB and
    the BigQuery emulator)."""
    wh = open_warehouse(settings)
    wh.ensure_schema()
    rng = np.random.default_rng(1)
    spec = [
        (loc, int(i), int(ts), float(rng.normal()))
        for loc in ("a", "b")
        for ts in range(30, 60)
        for i in sorted(rng.choice(np.arange(ts - 60, ts), 12, replace=False))
    ]
    kept = rows(spec, source="x", run_id="r", kind="as-issued")
    wh.append("weather_forecasts", kept)
    wh.append("weather_forecasts", kept.iloc[:5].assign(temperature_2m=99.0, ingested_at=T0 + H))
    horizon = 6
    source = WarehouseSource(wh, "weather_forecasts", horizon, T0 + 100 * H)
    got = source.read(T0 + 29 * H, T0 + 60 * H, ["a", "b"])
    assert len(got) <= 2 * 30 * (horizon + 1) < len(kept)
    loc = np.repeat([0, 1], 30)
    t = np.tile(np.arange(28, 58), 2)
    every = pd.concat(
        [kept, kept.iloc[:5].assign(temperature_2m=99.0, ingested_at=T0 + H)], ignore_index=True
    )
    a = place(got, ["a", "b"], START, loc, t, horizon, ["temperature_2m"])
    b = place(every, ["a", "b"], START, loc, t, horizon, ["temperature_2m"])
    np.testing.assert_array_equal(a.values["temperature_2m"], b.values["temperature_2m"])
    assert "QUALIFY" in read_sql("weather_forecasts", WEATHER, horizon)
    # nothing issued after the run's as_of is read
    early = WarehouseSource(wh, "weather_forecasts", horizon, T0 + 20 * H)
    assert (early.read(T0, T0 + 60 * H, ["a"])["issued_at"] <= T0 + 20 * H).all()


def test_read_cams_is_the_newest_issue_at_or_before_as_of(settings: Settings):
    wh = open_warehouse(settings)
    wh.ensure_schema()
    frame = pd.DataFrame(
        {
            "location_id": "a",
            "issued_at": [T0, T0, T0 + H, T0 + 3 * H],
            "ts": [T0 + 2 * H, T0 + 3 * H, T0 + 3 * H, T0 + 4 * H],
            "pm2_5": [1.0, 2.0, 3.0, 4.0],
            "provider": "cams",
            "source": "x",
            "run_id": "r",
            "ingested_at": T0,
        }
    )
    wh.append("air_quality_forecasts", frame)
    got = read_cams(wh, T0 + 2 * H, 3, ["pm2_5"], ["a"]).sort_values("ts")
    assert got["pm2_5"].tolist() == [3.0]  # 3 h from the 1 h issue; 4 h issued after as_of
    assert read_cams(wh, T0 + H, 3, ["pm2_5"])["pm2_5"].sort_values().tolist() == [1.0, 3.0]
    assert read_cams(wh, T0 + H, 3, ["us_aqi"]).empty  # CAMS has no such column here
