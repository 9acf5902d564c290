"""Unit conversions and meteorological relations, written once.

Sources convert what an API reports into the units of `common.core.schema.VARIABLES`
(Open-Meteo's: wind in km/h, humidity in %, dew point in °C) and derive a variable a
source lacks from the others; the features turn wind into components. They live in core
so every layer that needs them can import the same numbers.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import pandas as pd

KMH_PER_MS = 3.6  # wind: m/s -> km/h

# Magnus formula over water, e_s(T) ∝ exp(a·T / (b + T)), with Alduchov & Eskridge (1996)'s
# coefficients (a = 17.625, b = 243.04 °C): within 0.4 % of the Goff-Gratch vapour pressure
# for -40..50 °C. Dew point and relative humidity use the same pair, so deriving one from
# the other and back returns the input.
MAGNUS_A = 17.625
MAGNUS_B = 243.04  # °C

# numpy arrays or pandas Series (a Series keeps its index).
Values = TypeVar("Values", np.ndarray, pd.Series)


def relative_humidity(temp: Values, dew: Values) -> Values:
    """Relative humidity (%) from temperature and dew point (°C), capped at 100."""
    a, b = MAGNUS_A, MAGNUS_B
    rh = 100 * np.exp(a * dew / (b + dew) - a * temp / (b + temp))
    return np.minimum(rh, 100)


def dew_point(temp: Values, rh: Values) -> Values:
    """Dew point (°C) from temperature (°C) and relative humidity (%)."""
    a, b = MAGNUS_A, MAGNUS_B
    gamma = np.log(rh / 100) + a * temp / (b + temp)
    return b * gamma / (a - gamma)


def wind_components(speed: Values, direction_deg: Values) -> tuple[Values, Values]:
    """(u, v) of a wind blowing *from* `direction_deg` (meteorological convention): u is
    positive towards the east, v towards the north, in the unit of `speed`."""
    rad = np.deg2rad(direction_deg)
    return -speed * np.sin(rad), -speed * np.cos(rad)
