"""What the OpenAQ API v3 answers and what aircast makes of it: the pollutant parameters and
the columns they land in, unit conversion to µg/m³, the documented response shapes
(validated item by item, so one malformed item is quarantined alone), the sensor read per
location and pollutant, and the values collected by location and hour. The source itself
is `common.sources.openaq`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from common.sources.base import payload_text

# OpenAQ parameter name -> the column aircast stores it in.
COLUMNS = {
    "pm25": "pm2_5",
    "pm10": "pm10",
    "no2": "nitrogen_dioxide",
    "o3": "ozone",
    "so2": "sulphur_dioxide",
    "co": "carbon_monoxide",
}
# The parameter ids of those pollutants in every unit OpenAQ has for them (µg/m³, ppm, ppb).
PARAMETER_IDS = (2, 1, 5, 7, 15, 3, 10, 32, 6, 9, 101, 4, 8, 102)

# Gases: g/mol, and the molar volume of an ideal gas at 25 °C and 1 atm (R*T/P, L/mol).
MOLAR_MASS = {
    "nitrogen_dioxide": 46.0055,
    "ozone": 47.9982,
    "sulphur_dioxide": 64.066,
    "carbon_monoxide": 28.0101,
}
MOLAR_VOLUME = 0.0820574 * 298.15  # 24.465 L/mol
UNIT_PREFERENCE = ("µg/m³", "ppb", "ppm", "mg/m³")


def unit(text: str) -> str:
    """A unit string as aircast spells it: Greek mu, 'ug/m3' and 'm3' made µg/m³."""
    t = text.strip().replace("μ", "µ").replace("m3", "m³").replace("ug/", "µg/")
    return t.lower() if t.lower() in ("ppm", "ppb") else t


def factor(column: str, units: str) -> float | None:
    """What multiplies a value in `units` to give µg/m³ (None: no conversion exists)."""
    u = unit(units)
    if u == "µg/m³":
        return 1.0
    if u == "mg/m³":
        return 1000.0
    if column in MOLAR_MASS and u in ("ppb", "ppm"):
        per_ppb = MOLAR_MASS[column] / MOLAR_VOLUME
        return per_ppb if u == "ppb" else 1000.0 * per_ppb
    return None


# -- the documented response shapes (named as before: a name shows in quarantine reasons) ---
class _Page(BaseModel):
    model_config = ConfigDict(extra="allow")

    meta: dict[str, Any] = {}
    results: list[Any]


class _Parameter(BaseModel):
    id: int
    name: str
    units: str


class _SensorItem(BaseModel):
    id: int
    parameter: _Parameter


class _Coordinates(BaseModel):
    latitude: float
    longitude: float


class _LocationItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    name: str | None = None
    locality: str | None = None
    timezone: str | None = None
    coordinates: _Coordinates
    sensors: list[_SensorItem]


class _Time(BaseModel):
    utc: str


class _Period(BaseModel):
    datetimeFrom: _Time
    datetimeTo: _Time


class _Hour(BaseModel):
    model_config = ConfigDict(extra="allow")

    period: _Period
    value: float | None
    parameter: _Parameter | None = None


class _Latest(BaseModel):
    model_config = ConfigDict(extra="allow")

    datetime: _Time
    value: float | None
    sensorsId: int
    locationsId: int


@dataclass(frozen=True)
class Sensor:
    """The sensor a location's pollutant is read from, with the factor to µg/m³."""

    id: int
    location_id: str
    parameter_id: int
    column: str
    units: str
    factor: float


def rank(sensor: Sensor) -> tuple[int, int]:
    """Which of a location's sensors for one pollutant is read: the lowest ranks first."""
    return UNIT_PREFERENCE.index(sensor.units), sensor.id


class Rows:
    """Values by (location_id, ts), one column per sensor, with the raw items as payload."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, dt.datetime], dict[str, Any]] = {}
        self.raw: dict[tuple[str, dt.datetime], dict[str, Any]] = {}

    def put(self, sensor: Sensor, ts: dt.datetime, value: float, item: Any) -> None:
        key = (sensor.location_id, ts)
        self.values.setdefault(key, {})[sensor.column] = value
        self.raw.setdefault(key, {})[f"sensor {sensor.id}"] = item

    def frame(self) -> pd.DataFrame:
        if not self.values:
            return pd.DataFrame()
        rows = [
            {"location_id": lid, "ts": ts, **v, "payload": payload_text(self.raw[(lid, ts)])}
            for (lid, ts), v in self.values.items()
        ]
        return pd.DataFrame(rows)
