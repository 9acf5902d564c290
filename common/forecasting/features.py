"""Features for (location, issue time t, horizon h): the one copy that train and predict share.

Everything a row holds is known at t: the target's recent values (as log changes relative to
the last observation, the *anchor*), rolling statistics, the other pollutants and the
weather at t, the calendar of the target hour, the horizon, and - when a forecast of it
exists - the weather at the target hour and the CAMS forecast of the target. Training and
predict alike use the newest forecast issued at or before t (`common.forecasting.as_issued`);
observed weather at the target hour is only a named study setting (`weather =
"observed-oracle"`), never the default.

Missing history is explicit: a missing value is NaN (XGBoost learns where to send it), never
zero, and a location whose target has no value in the last `MAX_ANCHOR_AGE` hours or fewer
than `MIN_RECENT` values in the last 24 hours is skipped with a reason.

The rows are computed on a dense grid (`common.forecasting.grid`) so that training over
years and serving 10,000 locations are the same vectorised array code; the regional
features come from `common.forecasting.neighbours`.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from common.core.meteo import wind_components
from common.core.schema import POLLUTANTS, WEATHER
from common.forecasting.as_issued import WEATHER_MODES, Placed, place
from common.forecasting.grid import (
    HOUR,
    Grid,
    Window,
    anchors,
    at,
    calendar,
    eligible,
    hour64,
    skip_reason,
    to_hour64,
)
from common.forecasting.neighbours import Region, neighbour_features, neighbour_matrix, region_of

HISTORY_HOURS = 72  # the longest window a feature reads, ending at t
LAGS = (1, 2, 3, 6, 12, 24)
WINDOWS = (3, 6, 12, 24, 48, 72)
FUTURE_WEATHER = (
    "temperature_2m",
    "relative_humidity_2m",
    "dew_point_2m",
    "precipitation",
    "surface_pressure",
    "wind_speed_10m",
    "wind_u",
    "wind_v",
)


@dataclass(frozen=True)
class FeatureSpec:
    """What the model sees; stored in the model metadata so serving rebuilds the same rows."""

    target: str = "pm2_5"
    horizon: int = 24
    future_weather: bool = True
    # Training's target-hour weather: forecasts as issued (the rule predict uses), or the
    # observed weather (a study of a perfect forecast; see as_issued.WEATHER_MODES).
    weather: str = "as-issued"
    cams: bool = False  # the CAMS forecast of the target at the target hour, as issued

    def __post_init__(self) -> None:
        if self.weather not in WEATHER_MODES:
            raise ValueError(f"weather must be one of {WEATHER_MODES}, not {self.weather!r}")

    def others(self) -> list[str]:
        return [p for p in POLLUTANTS if p != self.target]

    def columns(self) -> list[str]:
        cols = ["level", "anchor_age"]
        cols += [f"lag_{k}" for k in LAGS]
        cols += [f"mean_{w}" for w in WINDOWS]
        cols += ["std_24", "max_24", "min_24", "valid_24"]
        for p in self.others():
            cols += [p, f"{p}_mean_24"]
        cols += [w for w in WEATHER if w != "wind_direction_10m"]
        cols += ["wind_u", "wind_v", "wind_u_6", "wind_v_6", "wind_u_24", "wind_v_24"]
        cols += ["precip_24", "pressure_d3", "pressure_d24", "humidity_d6", "temp_d24"]
        cols += ["dew_d24"]
        cols += ["nb_level", "nb_max", "nb_d1", "nb_d3", "nb_d6", "nb_count"]
        cols += ["horizon_h", "hour", "dow", "doy", "seasonal_24", "seasonal_48"]
        if self.future_weather:
            cols += [f"f_{w}" for w in FUTURE_WEATHER] + ["f_temp_d", "f_pressure_d"]
        if self.cams:
            cols += ["f_cams"]
        return cols

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "horizon": self.horizon,
            "future_weather": self.future_weather,
            "weather": self.weather,
            "cams": self.cams,
        }

    def oracle_weather(self) -> bool:
        """Trained on the observed weather at the target hours (the perfect-forecast study):
        such a model is scored on other rows than it was fitted on, the forecasts as
        issued, as predict would serve it."""
        return self.future_weather and self.weather != "as-issued"

    def weather_used(self) -> str:
        """Which weather at the target hours the model was trained on (its card says it)."""
        return self.weather if self.future_weather else "none"


def grid_columns(spec: FeatureSpec) -> list[str]:
    """Observation columns the features read."""
    return [spec.target, *spec.others(), *WEATHER]


def build(
    grid: Grid,
    loc: np.ndarray,
    t: np.ndarray,
    spec: FeatureSpec,
    places: pd.DataFrame,
    future: Mapping[str, np.ndarray] | None = None,
    region: Region | None = None,
    cams: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature rows for issue times (grid.location_ids[loc[i]], hour t[i]) x horizons 1..H.

    Reads only grid columns <= t[i]. `future[var]` is (len(loc), H): the weather forecast
    for each target hour (NaN where none); required when spec.future_weather. `cams` is
    (len(loc), H): the CAMS forecast of the target issued by t (NaN where none).
    Returns (X, keys) with rows ordered by issue pair, then horizon; keys has location_id,
    issued_at, target_ts, horizon_h, level (log1p of the anchor) and anchor (its value).
    """
    loc = np.asarray(loc, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    H = spec.horizon
    y = grid.values[spec.target]
    ly = np.log1p(np.clip(y, 0, None))
    last, _ = anchors(grid, spec.target)
    a_idx = last[loc, t]
    level = ly[loc, np.maximum(a_idx, 0)]
    level = np.where(a_idx >= 0, level, np.nan)

    f: dict[str, np.ndarray] = {"level": level, "anchor_age": (t - a_idx).astype(float)}
    f.update(_target_features(ly, loc, t, level))
    f.update(_context_features(grid, spec, loc, t))
    if region is None:
        region = Region(ly, neighbour_matrix(grid.location_ids, places))
    f.update(neighbour_features(region, loc, t, level))

    # Expand issue features over the horizons: row r = pair r // H, horizon r % H + 1.
    cols: dict[str, np.ndarray] = {k: np.repeat(v, H) for k, v in f.items()}
    rows = _Rows.of(grid, loc, t, H)
    lvl = cols["level"]
    cols.update(_target_hour_features(grid, places, ly, np.repeat(t, H), rows, lvl))
    if spec.future_weather:
        if future is None:
            raise ValueError("spec.future_weather needs weather for the target hours")
        cols.update(_future_features(future, cols))
    if spec.cams:
        c = np.full(len(loc) * H, np.nan) if cams is None else np.asarray(cams, float).reshape(-1)
        with np.errstate(invalid="ignore"):
            cols["f_cams"] = np.log1p(np.clip(c, 0, None)) - lvl
    X = pd.DataFrame({c: cols[c].astype(np.float32) for c in spec.columns()})
    keys = pd.DataFrame(
        {
            "location_id": pd.Categorical.from_codes(rows.loc, categories=grid.location_ids),
            "issued_at": pd.DatetimeIndex(grid.hours(np.repeat(t, H))).tz_localize("UTC"),
            "target_ts": pd.DatetimeIndex(rows.target_ts).tz_localize("UTC"),
            "horizon_h": rows.h,
            "level": lvl,
            "anchor": np.expm1(lvl),
        }
    )
    return X, keys


class _Rows(NamedTuple):
    """The feature rows of issue pairs x horizons: each row's horizon, target hour index,
    location index and target hour."""

    h: np.ndarray
    tt: np.ndarray
    loc: np.ndarray
    target_ts: np.ndarray

    @classmethod
    def of(cls, grid: Grid, loc: np.ndarray, t: np.ndarray, H: int) -> _Rows:
        h = np.tile(np.arange(1, H + 1), len(loc))
        tt = np.repeat(t, H) + h  # target hour index
        return cls(h, tt, np.repeat(loc, H), grid.hours(tt))


def _target_hour_features(
    grid: Grid,
    places: pd.DataFrame,
    ly: np.ndarray,
    issued: np.ndarray,
    rows: _Rows,
    lvl: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per row: the horizon, the target hour's local calendar, and the target a day (two
    days) before the target hour, relative to the level (`issued`: each row's issue hour)."""
    cols = {"horizon_h": rows.h.astype(float)}
    zones = places.drop_duplicates("location_id").set_index("location_id")["timezone"]
    zones = zones.reindex(grid.location_ids).fillna("UTC").to_numpy()
    cols["hour"], cols["dow"], cols["doy"] = calendar(rows.target_ts, zones[rows.loc])
    # The same hour a day (two days) before the target: always <= t because h <= 24 (48).
    s24, s48 = rows.tt - 24, rows.tt - 48
    cols["seasonal_24"] = np.where(s24 <= issued, at(ly, rows.loc, s24), np.nan) - lvl
    cols["seasonal_48"] = np.where(s48 <= issued, at(ly, rows.loc, s48), np.nan) - lvl
    return cols


def _target_features(
    ly: np.ndarray, loc: np.ndarray, t: np.ndarray, level: np.ndarray
) -> dict[str, np.ndarray]:
    """The target's lags and window statistics up to t, relative to its last value (`level`)."""
    f: dict[str, np.ndarray] = {}
    for k in LAGS:
        f[f"lag_{k}"] = at(ly, loc, t - k) - level
    win = Window(ly)
    for w in WINDOWS:
        f[f"mean_{w}"] = win.mean(loc, t, w) - level
    f["std_24"] = win.std(loc, t, 24)
    back = t[:, None] + np.arange(-23, 1)[None, :]
    block = at(ly, loc[:, None], back)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f["max_24"] = np.nanmax(block, axis=1) - level
        f["min_24"] = np.nanmin(block, axis=1) - level
    f["valid_24"] = win.count(loc, t, 24) / 24.0
    return f


def _context_features(
    grid: Grid, spec: FeatureSpec, loc: np.ndarray, t: np.ndarray
) -> dict[str, np.ndarray]:
    """The other pollutants and the weather at t, and the weather's recent changes."""
    f: dict[str, np.ndarray] = {}
    for name in spec.others():
        lp = np.log1p(np.clip(grid.values[name], 0, None))
        f[name] = at(lp, loc, t)
        f[f"{name}_mean_24"] = Window(lp).mean(loc, t, 24)
    for name in WEATHER:
        if name != "wind_direction_10m":
            f[name] = at(grid.values[name], loc, t)
    for comp in ("wind_u", "wind_v"):
        x = grid.values[comp]
        f[comp] = at(x, loc, t)
        cw = Window(x)
        f[f"{comp}_6"] = cw.mean(loc, t, 6)
        f[f"{comp}_24"] = cw.mean(loc, t, 24)
    f["precip_24"] = Window(grid.values["precipitation"]).sum(loc, t, 24)
    pressure = grid.values["surface_pressure"]
    f["pressure_d3"] = at(pressure, loc, t) - at(pressure, loc, t - 3)
    f["pressure_d24"] = at(pressure, loc, t) - at(pressure, loc, t - 24)
    rh = grid.values["relative_humidity_2m"]
    f["humidity_d6"] = at(rh, loc, t) - at(rh, loc, t - 6)
    temp = grid.values["temperature_2m"]
    f["temp_d24"] = at(temp, loc, t) - at(temp, loc, t - 24)
    dew = grid.values["dew_point_2m"]
    f["dew_d24"] = at(dew, loc, t) - at(dew, loc, t - 24)
    return f


def _future_features(
    future: Mapping[str, np.ndarray], cols: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The weather at each target hour (one row per pair x horizon) and its change from t."""
    f: dict[str, np.ndarray] = {}
    for name in FUTURE_WEATHER:
        f[f"f_{name}"] = np.asarray(future[name], dtype=float).reshape(-1)
    f["f_temp_d"] = f["f_temperature_2m"] - cols["temperature_2m"]
    f["f_pressure_d"] = f["f_surface_pressure"] - cols["surface_pressure"]
    return f


def future_from_grid(grid: Grid, loc: np.ndarray, t: np.ndarray, horizon: int) -> dict:
    """Observed weather at each target hour: the stand-in for a forecast in training."""
    tt = np.asarray(t)[:, None] + np.arange(1, horizon + 1)[None, :]
    return {w: at(grid.values[w], np.asarray(loc)[:, None], tt) for w in FUTURE_WEATHER}


def future_from_forecasts(
    forecasts: pd.DataFrame, grid: Grid, loc: np.ndarray, t: np.ndarray, horizon: int
) -> dict:
    """Weather forecasts (location_id, ts, weather columns) placed on each pair's target hours."""
    out = {w: np.full((len(loc), horizon), np.nan) for w in FUTURE_WEATHER}
    if forecasts is None or forecasts.empty:
        return out
    fc = forecasts.copy()
    if "wind_speed_10m" in fc and "wind_direction_10m" in fc:
        fc["wind_u"], fc["wind_v"] = wind_components(
            pd.to_numeric(fc["wind_speed_10m"], errors="coerce"),
            pd.to_numeric(fc["wind_direction_10m"], errors="coerce"),
        )
    row_of = {int(loc_i): i for i, loc_i in enumerate(np.asarray(loc))}
    li = pd.Index(grid.location_ids).get_indexer(fc["location_id"])
    ts = to_hour64(fc["ts"])
    t_of_loc = np.full(len(grid.location_ids), -(10**9), dtype=np.int64)
    for loc_i, i in row_of.items():
        t_of_loc[loc_i] = np.asarray(t)[i]
    ok = li >= 0
    hh = np.where(ok, ((ts - grid.start) // HOUR).astype(np.int64) - t_of_loc[np.maximum(li, 0)], 0)
    ok &= (hh >= 1) & (hh <= horizon)
    rows = np.array([row_of.get(int(x), -1) for x in li])
    ok &= rows >= 0
    for w in FUTURE_WEATHER:
        if w in fc:
            out[w][rows[ok], hh[ok] - 1] = pd.to_numeric(fc[w], errors="coerce").to_numpy(float)[ok]
    return out


def serving_features(
    obs: pd.DataFrame,
    issue_time: dt.datetime,
    spec: FeatureSpec,
    places: pd.DataFrame,
    forecasts: pd.DataFrame | None = None,
    neighbours: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    cams: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[str, str]]]:
    """(X, keys, skipped) for every location in `places` at issue time t, horizons 1..H.

    `places` has location_id, latitude, longitude, timezone (the locations table).
    Observations after t are ignored; `forecasts` (location_id, ts, weather...) supplies the
    target-hour weather when the model uses it, `cams` (location_id, issued_at, ts, the
    target; `common.forecasting.as_issued.read_cams`) the CAMS forecast when the model
    uses it. `neighbours` = (their places, their
    observations of the target in the REGION_HOURS up to t), for locations outside `places`
    among the neighbours of one in it (`neighbours.neighbours_of`: the NEIGHBOUR_K nearest
    within NEIGHBOUR_KM): they count in the regional features and are not forecast
    themselves.
    """
    t_end = hour64(issue_time)
    if not obs.empty:
        obs = obs[to_hour64(obs["ts"]) <= t_end]
    start = issue_time - dt.timedelta(hours=HISTORY_HOURS - 1)
    ids = places["location_id"].astype(str).drop_duplicates().tolist()
    grid = Grid.from_frame(obs, start, issue_time, ids, grid_columns(spec))
    t_idx = grid.n_hours - 1
    last, recent = anchors(grid, spec.target)  # once: not once per skipped location
    ok = eligible(last, recent)[:, t_idx]
    skipped = [
        (grid.location_ids[i], skip_reason(last, recent, spec.target, i, t_idx) or "")
        for i in np.nonzero(~ok)[0]
    ]
    loc = np.nonzero(ok)[0]
    t = np.full(len(loc), t_idx)
    future = None
    if spec.future_weather:
        future = future_from_forecasts(forecasts, grid, loc, t, spec.horizon)
    region = None
    if neighbours is not None:
        region = region_of(grid, spec.target, obs, places, *neighbours, start, issue_time)
    placed: Placed | None = None
    if spec.cams:
        placed = place(cams, grid.location_ids, grid.start, loc, t, spec.horizon, [spec.target])
    X, keys = build(
        grid,
        loc,
        t,
        spec,
        places,
        future,
        region,
        None if placed is None else placed.values[spec.target],
    )
    return X, keys, skipped
