"""The dense (location x hour) grid the features are computed on, and what reads it.

Locations x hours on one UTC axis, NaN where nothing was observed, so training over years
and serving 10,000 locations are the same vectorised array code: the grid, O(1) window
statistics along its hours, which (location, hour) pairs have recent enough history to be
forecast from, and the local calendar of an hour.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from common.core.meteo import wind_components

MAX_ANCHOR_AGE = 6  # hours: the last target value must be this recent
MIN_RECENT = 12  # target values needed in the 24 hours up to t
HOUR = np.timedelta64(1, "h")


@dataclass
class Grid:
    """Hourly values of each variable as (location, hour) float arrays; NaN = not observed."""

    location_ids: list[str]
    start: np.datetime64  # UTC hour of column 0
    n_hours: int
    values: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        start: dt.datetime,
        end: dt.datetime,
        location_ids: Sequence[str],
        columns: Sequence[str],
    ) -> Grid:
        """Place `frame` rows (location_id, ts, columns...) on the hours [start, end]."""
        t0 = hour64(start)
        n = int((hour64(end) - t0) // HOUR) + 1
        grid = cls(list(location_ids), t0, n)
        rows = pd.Index(grid.location_ids).get_indexer(frame["location_id"]) if len(frame) else []
        if len(frame):
            ts = to_hour64(frame["ts"])
            cols = ((ts - t0) // HOUR).astype(np.int64)
            keep = (np.asarray(rows) >= 0) & (cols >= 0) & (cols < n)
            rows, cols = np.asarray(rows)[keep], cols[keep]
        for c in columns:
            arr = np.full((len(grid.location_ids), n), np.nan, dtype=np.float64)
            if len(frame) and c in frame:
                arr[rows, cols] = pd.to_numeric(frame[c], errors="coerce").to_numpy(float)[keep]
            grid.values[c] = arr
        if "wind_speed_10m" in grid.values and "wind_direction_10m" in grid.values:
            grid.values["wind_u"], grid.values["wind_v"] = wind_components(
                grid.values["wind_speed_10m"], grid.values["wind_direction_10m"]
            )
        return grid

    def hours(self, idx: np.ndarray) -> np.ndarray:
        return self.start + idx.astype(np.int64) * HOUR


class Window:
    """O(1) window sums over the hour axis via cumulative sums (NaN-aware)."""

    def __init__(self, x: np.ndarray) -> None:
        valid = ~np.isnan(x)
        v = np.where(valid, x, 0.0)
        pad = np.zeros((x.shape[0], 1))
        self.s = np.concatenate([pad, np.cumsum(v, axis=1)], axis=1)
        self.q = np.concatenate([pad, np.cumsum(v * v, axis=1)], axis=1)
        self.c = np.concatenate([pad, np.cumsum(valid, axis=1)], axis=1)

    def _diff(self, a: np.ndarray, loc: np.ndarray, t: np.ndarray, w: int) -> np.ndarray:
        lo = np.maximum(t + 1 - w, 0)
        return a[loc, t + 1] - a[loc, lo]

    def count(self, loc: np.ndarray, t: np.ndarray, w: int) -> np.ndarray:
        return self._diff(self.c, loc, t, w)

    def mean(self, loc: np.ndarray, t: np.ndarray, w: int) -> np.ndarray:
        n = self.count(loc, t, w)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self._diff(self.s, loc, t, w) / n, np.nan)

    def sum(self, loc: np.ndarray, t: np.ndarray, w: int) -> np.ndarray:
        n = self.count(loc, t, w)
        return np.where(n > 0, self._diff(self.s, loc, t, w), np.nan)

    def std(self, loc: np.ndarray, t: np.ndarray, w: int) -> np.ndarray:
        n = self.count(loc, t, w)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = self._diff(self.s, loc, t, w) / n
            var = self._diff(self.q, loc, t, w) / n - m * m
        return np.where(n > 1, np.sqrt(np.maximum(var, 0.0)), np.nan)


def at(x: np.ndarray, loc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """x[loc, t], NaN where t is off the grid."""
    ok = (t >= 0) & (t < x.shape[1])
    out = np.full(np.shape(t), np.nan)
    out[ok] = x[np.broadcast_to(loc, np.shape(t))[ok], t[ok]]
    return out


def anchors(grid: Grid, target: str) -> tuple[np.ndarray, np.ndarray]:
    """For every (location, hour): the hour index of the last target value at or before it
    (-1 if none) and the number of target values in the 24 hours up to it."""
    x = grid.values[target]
    valid = ~np.isnan(x)
    idx = np.where(valid, np.arange(x.shape[1])[None, :], -1)
    last = np.maximum.accumulate(idx, axis=1)
    c = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(valid, axis=1)], axis=1)
    t = np.arange(x.shape[1])
    recent = c[:, t + 1] - c[:, np.maximum(t + 1 - 24, 0)]
    return last, recent


def eligible(last: np.ndarray, recent: np.ndarray) -> np.ndarray:
    """(location, hour) mask of issue times with enough recent history to forecast from,
    given `anchors()` (computed once by the caller: it covers the whole grid)."""
    t = np.arange(last.shape[1])[None, :]
    return (last >= 0) & (t - last <= MAX_ANCHOR_AGE) & (recent >= MIN_RECENT)


def skip_reason(
    last: np.ndarray, recent: np.ndarray, target: str, loc: int | np.integer[Any], t: int
) -> str | None:
    """Why (loc, t) is not eligible, from the caller's `anchors()`; None if it is."""
    if last[loc, t] < 0 or t - last[loc, t] > MAX_ANCHOR_AGE:
        return f"no {target} observation in the {MAX_ANCHOR_AGE} hours up to the issue time"
    if recent[loc, t] < MIN_RECENT:
        return (
            f"only {int(recent[loc, t])} {target} observations in the 24 hours up to the issue "
            f"time (need {MIN_RECENT})"
        )
    return None


def calendar(target_ts: np.ndarray, zones: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local hour, day of week and day of year of each target hour."""
    hour = np.empty(len(target_ts))
    dow, doy = np.empty(len(target_ts)), np.empty(len(target_ts))
    tz = pd.Series(zones)
    utc = pd.DatetimeIndex(target_ts).tz_localize("UTC")
    for zone, idx in tz.groupby(tz).groups.items():
        local = utc[np.asarray(idx)].tz_convert(zone)
        hour[idx] = local.hour
        dow[idx] = local.day_of_week
        doy[idx] = local.day_of_year
    return hour, dow, doy


def hour64(value: dt.datetime | np.datetime64) -> np.datetime64:
    """The UTC hour of a time, as the grid's axis counts them."""
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[h]")
    return np.datetime64(pd.Timestamp(value).tz_convert("UTC").tz_localize(None), "h")


def to_hour64(series: pd.Series) -> np.ndarray:
    """The UTC hours of a column of times, as the grid's axis counts them."""
    s = pd.to_datetime(series, utc=True)
    return s.dt.tz_localize(None).to_numpy().astype("datetime64[h]")
