"""Training rows: (X, y, keys) for sampled issue times of a window, built by the one builder
(`common.forecasting.features.build`) with the actual value and the baselines beside them,
and the target-hour weather as issued (or observed, in the oracle study)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.forecasting.as_issued import place, with_wind_components
from common.forecasting.features import (
    FUTURE_WEATHER,
    HISTORY_HOURS,
    FeatureSpec,
    build,
    future_from_grid,
    grid_columns,
)
from common.forecasting.grid import HOUR, Grid, anchors, at, eligible, hour64, to_hour64


def training_examples(
    obs: pd.DataFrame,
    spec: FeatureSpec,
    start: dt.datetime,
    end: dt.datetime,
    places: pd.DataFrame,
    max_rows: int,
    seed: int = 0,
    as_issued: AsIssuedRows | None = None,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """(X, y, keys) for issue times in [start, end] whose target hour is observed.

    Issue times are subsampled (seeded, then kept in time order) so that the rows stay
    within `max_rows`. `keys` adds the actual value and the two baselines: persistence (the
    anchor) and seasonal naive (the last value at or before t + h - 24).
    """
    if obs.empty:
        raise ValueError("no observations in the training window")
    ids = sorted(obs["location_id"].astype(str).unique())
    t_first = min(to_hour64(obs["ts"]).min(), hour64(start) - HISTORY_HOURS * HOUR)
    grid_start = pd.Timestamp(t_first).to_pydatetime().replace(tzinfo=dt.UTC)
    grid_end = max(to_hour64(obs["ts"]).max(), hour64(end))
    grid_end_dt = pd.Timestamp(grid_end).to_pydatetime().replace(tzinfo=dt.UTC)
    grid = Grid.from_frame(obs, grid_start, grid_end_dt, ids, grid_columns(spec))
    ok = eligible(*anchors(grid, spec.target))
    lo = int((hour64(start) - grid.start) // HOUR)
    hi = int((hour64(end) - grid.start) // HOUR)
    ok[:, : max(lo, 0)] = False
    ok[:, hi + 1 :] = False
    loc, t = np.nonzero(ok)
    budget = max(max_rows // spec.horizon, 1)
    if len(loc) > budget:
        pick = np.sort(np.random.default_rng(seed).choice(len(loc), budget, replace=False))
        loc, t = loc[pick], t[pick]
    return examples_at(grid, loc, t, spec, places, as_issued)


@dataclass(frozen=True)
class AsIssuedRows:
    """Forecast rows as kept (location_id, issued_at, ts, values...) covering a grid's target
    hours: weather (with kind) and CAMS; `examples_at` places them by the as-issued rule."""

    weather: pd.DataFrame | None = None
    cams: pd.DataFrame | None = None


def examples_at(
    grid: Grid,
    loc: np.ndarray,
    t: np.ndarray,
    spec: FeatureSpec,
    places: pd.DataFrame,
    as_issued: AsIssuedRows | None = None,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """(X, y, keys) of the issue pairs (grid row loc[i], hour t[i]), in time order, with
    the actual value and the baselines; rows whose target hour is not observed are dropped.

    The target-hour weather is the newest forecast issued at or before t in
    `as_issued.weather` (NaN where none; `keys.weather_kind` says which kind was placed),
    or the observed weather when spec.weather is the oracle study. `keys.cams` is the CAMS
    forecast issued by t (the CAMS baseline; NaN where none), an input when spec.cams.

    The grid must hold HISTORY_HOURS before each t and H after it: then the rows are the
    same whatever else the grid holds (the sampled selection builds them on small grids).
    """
    loc, t = np.asarray(loc, dtype=np.int64), np.asarray(t, dtype=np.int64)
    order = np.lexsort((loc, t))  # time order
    loc, t = loc[order], t[order]
    rows = as_issued or AsIssuedRows()
    H = spec.horizon
    future, kind = None, None
    if spec.future_weather and spec.weather == "observed-oracle":
        future = future_from_grid(grid, loc, t, H)
        kind = np.full((len(loc), H), "observed-oracle", dtype=object)
    elif spec.future_weather:
        placed = place(
            with_wind_components(rows.weather) if rows.weather is not None else None,
            grid.location_ids,
            grid.start,
            loc,
            t,
            H,
            FUTURE_WEATHER,
        )
        future, kind = placed.values, placed.kind
    cams = place(rows.cams, grid.location_ids, grid.start, loc, t, H, [spec.target])
    X, keys = build(grid, loc, t, spec, places, future, cams=cams.values[spec.target])
    y_raw = grid.values[spec.target]
    ll, tt = np.repeat(loc, spec.horizon), np.repeat(t, spec.horizon) + keys["horizon_h"].to_numpy()
    actual = at(y_raw, ll, tt)
    filled = pd.DataFrame(y_raw.T).ffill().to_numpy().T  # last value at or before each hour
    keys["actual"] = actual
    keys["persistence"] = keys["anchor"]
    keys["seasonal_naive"] = at(filled, ll, tt - 24)
    keys["cams"] = cams.values[spec.target].reshape(-1)
    keys["weather_kind"] = (
        np.where(kind.reshape(-1) == "", "none", kind.reshape(-1)).astype(str)
        if kind is not None
        else "none"
    )
    keep = ~np.isnan(actual)
    X, keys = X[keep].reset_index(drop=True), keys[keep].reset_index(drop=True)
    y = (np.log1p(np.clip(actual[keep], 0, None)) - keys["level"].to_numpy()).astype(np.float32)
    return X, y, keys
