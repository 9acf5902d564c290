"""Drift against the season and the weather: a week is compared with the same month of the
training years, and an input warns or alerts only beyond what the training data's own
weeks showed, so a normal week of one city's weather is not drift and a shifted one is."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from common.forecasting.versions import DriftReferences
from common.monitoring import drift
from common.monitoring import thresholds as th
from common.monitoring.drift_condition import drift_levels

UTC = dt.UTC
COLUMNS = ["temperature_2m"]
WEEK = th.DRIFT_WINDOW_HOURS


def _weather(start: str, end: str, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Hourly temperature of one place: a yearly cycle (cold January, warm July), a daily
    cycle, and weather regimes lasting days (an AR(1) process with a ~8-day memory)."""
    ts = pd.date_range(start, end, freq="h", tz="UTC", inclusive="left")
    rng = np.random.default_rng(seed)
    regime = np.zeros(len(ts))
    for i in range(1, len(ts)):
        regime[i] = 0.995 * regime[i - 1] + rng.normal(0, 0.4)
    season = -15 * np.cos(2 * np.pi * (ts.day_of_year.to_numpy() - 15) / 365)
    day = 4 * np.sin(2 * np.pi * (ts.hour.to_numpy() - 9) / 24)
    temp = 12 + season + day + regime + rng.normal(0, 1, len(ts)) + shift
    return pd.DataFrame({"location_id": "a", "ts": ts, "temperature_2m": temp})


TRAINING = _weather("2013-03-01", "2016-03-01", seed=0)
REFERENCES = DriftReferences(
    reference=drift.reference(TRAINING, COLUMNS),
    reference_by_month=drift.monthly_reference(TRAINING, COLUMNS),
)
NATURAL = drift.natural_psi(TRAINING, REFERENCES, WEEK, th.NATURAL_PSI_QUANTILE)
MARCH = (dt.datetime(2016, 3, 5, tzinfo=UTC), dt.datetime(2016, 3, 12, tzinfo=UTC))


def _state(week: pd.DataFrame) -> str:
    ref, _ = drift.pick_reference(REFERENCES, *MARCH)
    value = drift.psi_by_column(ref, week)["temperature_2m"]
    return drift_levels(NATURAL["temperature_2m"]).state(value)


def test_each_month_has_its_deciles_and_the_training_weeks_their_psi():
    assert sorted(REFERENCES.reference_by_month) == list(range(1, 13))
    march = REFERENCES.reference_by_month[3]["temperature_2m"]
    assert march.n == 3 * 31 * 24  # the Marches of 2013, 2014 and 2015
    natural = NATURAL["temperature_2m"]
    assert 0 < natural.quantile <= natural.max
    # stored with month keys "1".."12", as versions have always been
    assert sorted(REFERENCES.to_json()["reference_by_month"], key=int) == [
        str(m) for m in range(1, 13)
    ]


def test_normal_march_weeks_are_not_drift_and_were_against_the_fixed_levels():
    states, fixed = [], []
    for seed in range(1, 9):  # eight new years of the same climate: their first March week
        week = _weather("2016-03-05", "2016-03-12", seed=seed)
        states.append(_state(week))
        fixed.append(
            th.LEVELS["drift"].state(
                drift.psi(REFERENCES.reference[COLUMNS[0]], week[COLUMNS[0]].to_numpy(float))
            )
        )
    assert "alert" not in states and states.count("warn") <= 2, states
    assert fixed.count("alert") >= 6, fixed  # what the whole window's deciles said


def test_a_week_shifted_beyond_its_weather_is_drift():
    # the synthetic weather's weeks differ by several degrees (a regime's sd is 4 C), so a
    # 15 C offset (a sensor's, or a unit mix-up's) is what stands out of them
    for seed in (1, 2, 3):
        assert _state(_weather("2016-03-05", "2016-03-12", seed=seed, shift=15.0)) == "alert"


def test_a_month_the_training_data_lacks_falls_back_to_the_whole_window():
    short = _weather("2016-01-01", "2016-03-01", seed=0)
    refs = DriftReferences(
        reference=drift.reference(short, COLUMNS),
        reference_by_month=drift.monthly_reference(short, COLUMNS),
    )
    assert sorted(refs.reference_by_month) == [1, 2]
    july = (dt.datetime(2016, 7, 1, tzinfo=UTC), dt.datetime(2016, 7, 8, tzinfo=UTC))
    ref, against = drift.pick_reference(refs, *july)
    assert against == "the whole training window" and ref is refs.reference
    # versions trained before the monthly deciles existed: the whole window, as before
    older = DriftReferences(reference=ref)
    assert drift.pick_reference(older, *july)[1] == "the whole training window"
    assert drift.monthly_reference(short.iloc[:100], COLUMNS) == {}  # too few rows


def test_training_weeks_are_runs_of_consecutive_hours_each_left_out_of_its_reference():
    # three January weeks of different years and a 2-day run: 3 windows, each compared with
    # the other two weeks; too few for levels of their own
    ranges = [("2014-01-05", "2014-01-12"), ("2015-01-05", "2015-01-12")]
    ranges += [("2016-01-05", "2016-01-12"), ("2016-01-20", "2016-01-22")]
    rows = pd.concat([_weather(a, b, seed=i) for i, (a, b) in enumerate(ranges)], ignore_index=True)
    assert drift.natural_psi(rows, REFERENCES, WEEK, 0.95) == {}
    fourth = _weather("2013-01-05", "2013-01-12", seed=9)
    four = pd.concat([rows, fourth], ignore_index=True)
    natural = drift.natural_psi(four, REFERENCES, WEEK, 0.95)
    assert set(natural) == {"temperature_2m"}
    # a week measured against a reference that holds it would look closer than it is
    own = drift.reference(fourth, COLUMNS)
    assert drift.psi_by_column(own, fourth)["temperature_2m"] < 0.05
    assert natural["temperature_2m"].max > 0.05
    # without levels of its own an input keeps the fixed ones
    assert drift_levels(None) == th.LEVELS["drift"]
