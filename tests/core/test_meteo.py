"""The unit conversions and meteorological relations of common.core.meteo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.core.meteo import dew_point, relative_humidity, wind_components


def test_dew_point_and_relative_humidity_invert_each_other():
    temp = np.array([-30.0, -5.0, 0.0, 12.5, 25.0, 45.0])
    rh = np.array([5.0, 30.0, 55.0, 80.0, 99.0, 100.0])
    np.testing.assert_allclose(relative_humidity(temp, dew_point(temp, rh)), rh, rtol=1e-12)
    # A dew point above the temperature (a measurement error) is capped at saturation.
    assert relative_humidity(np.array([10.0]), np.array([11.0]))[0] == 100


def test_magnus_values_match_the_published_relation():
    # Alduchov & Eskridge (1996): at 20 °C with a 10 °C dew point the air is ~52.5 % RH;
    # at saturation the dew point is the temperature.
    assert relative_humidity(np.array([20.0]), np.array([10.0]))[0] == pytest.approx(52.5, abs=0.1)
    assert dew_point(np.array([15.0]), np.array([100.0]))[0] == pytest.approx(15.0, abs=1e-12)


def test_series_keep_their_index_and_missing_values():
    temp = pd.Series([20.0, np.nan], index=[7, 9])
    out = relative_humidity(temp, pd.Series([10.0, 5.0], index=[7, 9]))
    assert list(out.index) == [7, 9] and np.isnan(out[9])


def test_wind_components_point_where_the_wind_blows_to():
    speed = np.array([10.0, 10.0, 10.0])
    u, v = wind_components(speed, np.array([0.0, 90.0, 270.0]))  # from N, from E, from W
    np.testing.assert_allclose(u, [0.0, -10.0, 10.0], atol=1e-12)
    np.testing.assert_allclose(v, [-10.0, 0.0, 0.0], atol=1e-12)
