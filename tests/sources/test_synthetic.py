"""The synthetic source behind `make demo`: the same hour has the same value whatever window
fetches it (its pollution memory is a fixed-length sum, not a recursion from the window's
start), its places are real cities marked synthetic, and its air builds up under stagnant
weather and clears with wind."""

from __future__ import annotations

import pandas as pd

from common.core.config import load_settings
from common.runtime.locations import for_source
from common.sources.synthetic import SyntheticSource

POLLUTANTS = ["pm2_5", "pm10", "nitrogen_dioxide", "ozone"]


def test_an_hour_has_one_value_whatever_window_fetches_it(tmp_path):
    src = SyntheticSource(load_settings(backend="local", home=tmp_path))
    loc = for_source("synthetic")[0]
    long = pd.date_range("2024-03-01", "2024-03-20", freq="h", tz="UTC")
    whole = src.series(loc, long).set_index("ts")
    for start, end in [("2024-03-10T05:00", "2024-03-10T09:00"), ("2024-03-19", "2024-03-20")]:
        part = src.series(loc, pd.date_range(start, end, freq="h", tz="UTC")).set_index("ts")
        pd.testing.assert_frame_equal(part, whole.loc[part.index])


def test_the_places_are_real_cities_whose_values_say_they_are_synthetic():
    places = {loc.location_id: loc for loc in for_source("synthetic")}
    assert {"synth-beijing", "synth-delhi", "synth-berlin", "synth-los-angeles"} <= set(places)
    assert all(loc.name.endswith("(synthetic)") for loc in places.values())
    beijing = places["synth-beijing"]
    assert (round(beijing.latitude, 1), round(beijing.longitude, 1)) == (39.9, 116.4)
    assert beijing.timezone == "Asia/Shanghai"
    assert places["synth-sao-paulo"].timezone == "America/Sao_Paulo"


def test_episodes_build_in_calm_weather_and_clear_with_wind(tmp_path):
    src = SyntheticSource(load_settings(backend="local", home=tmp_path))
    ts = pd.date_range("2024-01-01", periods=24 * 60, freq="h", tz="UTC")
    for loc in for_source("synthetic"):
        f = src.series(loc, ts).set_index("ts").reindex(ts)
        assert f[POLLUTANTS].notna().mean().min() > 0.9
        daily = f.drop(columns="location_id").resample("D").mean()
        calm = daily["wind_speed_10m"] < daily["wind_speed_10m"].quantile(0.3)
        windy = daily["wind_speed_10m"] > daily["wind_speed_10m"].quantile(0.7)
        assert daily["pm2_5"][calm].mean() > 1.3 * daily["pm2_5"][windy].mean(), loc.location_id
        # Calm days follow calm days: the load grows over them (an episode builds).
        assert daily["pm2_5"].autocorr(1) > 0.5, loc.location_id
        # Ozone peaks in the afternoon, local time; particles are highest at night.
        hour = f.index.tz_convert(loc.timezone).hour
        by_hour = f.groupby(hour)[["ozone", "pm2_5"]].mean()
        assert 11 <= by_hour["ozone"].idxmax() <= 17, loc.location_id
        assert by_hour["pm2_5"].idxmax() not in range(11, 17), loc.location_id
