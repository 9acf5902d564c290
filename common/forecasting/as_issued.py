"""Forecasts as issued (weather, CAMS air quality): the one rule that places them on a
forecast's rows, for training and serving alike.

A row of the model is an issue time t and a target hour t + h. The forecast it may use for
that hour is the newest one issued at or before t (`issued_at <= t`): what a deployment
had in hand when it forecast at t. Predict applies the rule in SQL for one as_of
(`common.predict.reads`); training applies it here, for every sampled issue time at once,
to the rows the warehouse kept (`read_sql` reduces them in the warehouse first), and the
CAMS baseline of `forecast_accuracy` applies it in the view. Observed weather at the
target hour is never a stand-in by default: a row with no forecast issued by t has NaN
(the booster learns where to send missing values); the oracle is a named study setting
(`FeatureSpec.weather = "observed-oracle"`).

`read_cams` is the one read of CAMS forecasts for a set of locations and issue time: the
predict feature, and any later consumer (a CAMS expert in the online combination), calls it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from common.core.meteo import wind_components
from common.core.schema import FORECAST_KINDS, POLLUTANTS, WEATHER

HOUR = np.timedelta64(1, "h")
_SPAN = 2**22  # issue-hour offsets kept apart in one sort key (478 years of hours)
_BACK = 2**20  # issue hours before the grid's start that can still be placed (~120 years)

# What training's target-hour weather is (FeatureSpec.weather): forecasts as issued (the
# default, the same rule as predict), or the observed weather (a study of what a perfect
# forecast would give: no deployment has it).
WEATHER_MODES = ("as-issued", "observed-oracle")
CAMS_PROVIDER = "cams"


@runtime_checkable
class AsIssuedSource(Protocol):
    """Forecast rows (location_id, issued_at, ts, columns..., kind?) with ts in (start, end]
    for `ids`, every row that the rule could pick for an issue time in the window."""

    def read(self, start: dt.datetime, end: dt.datetime, ids: Sequence[str]) -> pd.DataFrame:
        """Rows of `ids` with ts in (start, end]."""
        ...


@dataclass(frozen=True)
class FrameSource:
    """An AsIssuedSource over a frame in memory (small windows, tests, the benchmark)."""

    frame: pd.DataFrame

    def read(self, start: dt.datetime, end: dt.datetime, ids: Sequence[str]) -> pd.DataFrame:
        f = self.frame
        if f.empty:
            return f
        ts = pd.to_datetime(f["ts"], utc=True)
        keep = (ts > pd.Timestamp(start)) & (ts <= pd.Timestamp(end))
        keep &= f["location_id"].astype(str).isin(set(ids))
        return f[keep.to_numpy()]


@dataclass(frozen=True)
class AsIssuedInputs:
    """Where training reads forecasts as issued from: weather and CAMS (each may be None)."""

    weather: AsIssuedSource | None = None
    cams: AsIssuedSource | None = None


@dataclass
class Placed:
    """Forecast values on (pair, horizon) cells: `values[col]` is (n, H), NaN where no
    forecast was issued by the pair's issue time; `kind[i, h]` names its kind ('' = none)."""

    values: dict[str, np.ndarray]
    kind: np.ndarray


def place(
    rows: pd.DataFrame | None,
    location_ids: Sequence[str],
    start: np.datetime64,
    loc: np.ndarray,
    t: np.ndarray,
    horizon: int,
    columns: Sequence[str],
) -> Placed:
    """For each pair i (location `location_ids[loc[i]]`, issue hour `start + t[i]`) and
    h = 1..horizon, the values of the newest row of `rows` with ts = issue + h and
    issued_at <= issue (a retried issue: its newest ingestion). Vectorised: one sort of the
    rows, one binary search per cell."""
    loc, t = np.asarray(loc, dtype=np.int64), np.asarray(t, dtype=np.int64)
    n = len(loc)
    out = {c: np.full((n, horizon), np.nan) for c in columns}
    kind = np.full((n, horizon), "", dtype=object)
    if rows is None or rows.empty or n == 0:
        return Placed(out, kind)
    origin = np.asarray(start).astype("datetime64[h]")
    li = pd.Index(list(location_ids)).get_indexer(rows["location_id"].astype(str))
    ts = ((_hours(rows["ts"], ceil=False) - origin) // HOUR).astype(np.int64)
    issued = ((_hours(rows["issued_at"], ceil=True) - origin) // HOUR).astype(np.int64)
    span = int(t.max()) + horizon + 1 if n else 1
    ok = (li >= 0) & (ts >= 0) & (ts < span) & (issued >= -_BACK) & (issued < _SPAN - _BACK)
    if not ok.any():
        return Placed(out, kind)
    li, ts, issued = li[ok], ts[ok], issued[ok]
    sub = rows.loc[ok]
    ingested = (
        pd.to_datetime(sub["ingested_at"], utc=True).array.asi8
        if "ingested_at" in sub
        else np.zeros(len(sub), dtype=np.int64)
    )
    key = li * span + ts
    comb = key * _SPAN + (issued + _BACK)
    order = np.lexsort((ingested, comb))
    comb, key = comb[order], key[order]
    tt = t[:, None] + np.arange(1, horizon + 1)[None, :]
    qkey = (loc[:, None] * span + tt).reshape(-1)
    qcomb = qkey * _SPAN + (np.repeat(t, horizon) + _BACK)
    pos = np.searchsorted(comb, qcomb, side="right") - 1
    hit = pos >= 0
    hit[hit] = key[pos[hit]] == qkey[hit]
    chosen = order[pos[hit]]
    for c in columns:
        if c in sub:
            v = pd.to_numeric(sub[c], errors="coerce").to_numpy(float)
            flat = out[c].reshape(-1)
            flat[hit] = v[chosen]
    kinds = (
        sub["kind"].fillna(FORECAST_KINDS[0]).astype(str).to_numpy()
        if "kind" in sub
        else np.full(len(sub), FORECAST_KINDS[0], dtype=object)
    )
    kind.reshape(-1)[hit] = kinds[chosen]
    return Placed(out, kind)


def with_wind_components(rows: pd.DataFrame) -> pd.DataFrame:
    """Weather forecast rows with wind_u / wind_v (the features' form of the wind)."""
    if rows is None or rows.empty or "wind_speed_10m" not in rows:
        return rows
    out = rows.copy()
    if "wind_direction_10m" in out:
        out["wind_u"], out["wind_v"] = wind_components(
            pd.to_numeric(out["wind_speed_10m"], errors="coerce"),
            pd.to_numeric(out["wind_direction_10m"], errors="coerce"),
        )
    return out


def read_sql(table: str, columns: Sequence[str], horizon: int) -> str:
    """The rows of `table` with ts in (@start, @end], issued_at <= @as_of, location_id in
    @ids, that the rule can pick for some issue time: every row issued less than `horizon`
    hours before its ts (each is the newest for some t), plus the newest issued at least
    `horizon` hours before (the one any earlier issue time sees); a retried issue once.
    At most horizon + 1 rows per (location, hour) whatever the ingest kept."""
    cols = ", ".join(columns)
    extra = ", kind" if table == "weather_forecasts" else ""
    once = (
        f"SELECT location_id, issued_at, ts, ingested_at, {cols}{extra} FROM {table} "
        "WHERE location_id IN UNNEST(@ids) AND ts > @start AND ts <= @end "
        "AND issued_at <= @as_of QUALIFY ROW_NUMBER() OVER ("
        "PARTITION BY location_id, ts, issued_at ORDER BY ingested_at DESC) = 1"
    )
    recent = f"issued_at > TIMESTAMP_SUB(ts, INTERVAL {int(horizon)} HOUR)"
    return (
        f"SELECT * FROM ({once}) AS r WHERE TRUE QUALIFY {recent} OR ROW_NUMBER() OVER ("
        f"PARTITION BY location_id, ts, {recent} ORDER BY issued_at DESC) = 1"
    )


class WarehouseSource:
    """An AsIssuedSource reading the warehouse (`read_sql`), nothing issued after `as_of`."""

    def __init__(self, warehouse: _Queries, table: str, horizon: int, as_of: dt.datetime) -> None:
        self.warehouse, self.table, self.horizon, self.as_of = warehouse, table, horizon, as_of
        self.columns = WEATHER if table == "weather_forecasts" else POLLUTANTS

    def read(self, start: dt.datetime, end: dt.datetime, ids: Sequence[str]) -> pd.DataFrame:
        if not ids:
            return pd.DataFrame()
        return self.warehouse.query(
            read_sql(self.table, self.columns, self.horizon),
            {"ids": list(ids), "start": start, "end": end, "as_of": self.as_of},
        )


class _Queries(Protocol):
    def query(self, sql: str, params: dict | None = None) -> pd.DataFrame: ...


def read_cams(
    warehouse: _Queries,
    as_of: dt.datetime,
    horizon: int,
    targets: Sequence[str],
    ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The CAMS forecast for each (location, target hour in (as_of, as_of + horizon]): the
    newest issued at or before as_of; columns location_id, ts, issued_at and `targets`
    (pollutants), only the locations `ids` when given. The one read of CAMS for serving."""
    cols = [c for c in targets if c in POLLUTANTS]
    if not cols or (ids is not None and not ids):
        return pd.DataFrame(columns=["location_id", "ts", "issued_at", *cols])
    params: dict = {"as_of": as_of, "end": as_of + dt.timedelta(hours=horizon)}
    where = ""
    if ids is not None:
        params["ids"] = list(ids)
        where = " AND location_id IN UNNEST(@ids)"
    return warehouse.query(
        f"SELECT location_id, ts, issued_at, {', '.join(cols)} FROM air_quality_forecasts "
        f"WHERE issued_at <= @as_of AND ts > @as_of AND ts <= @end{where} "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, ts "
        "ORDER BY issued_at DESC, ingested_at DESC) = 1",
        params,
    )


def coverage(placed: Placed) -> dict[str, float]:
    """Share of (pair, horizon) cells by the kind of forecast placed ('none' = no forecast)."""
    k = placed.kind.reshape(-1)
    if len(k) == 0:
        return {}
    names, counts = np.unique(np.where(k == "", "none", k).astype(str), return_counts=True)
    return {str(a): round(float(b) / len(k), 4) for a, b in zip(names, counts, strict=True)}


def _hours(series: pd.Series, ceil: bool) -> np.ndarray:
    """UTC hours of the timestamps; `ceil` rounds up (an issue at 12:30 is usable from 13)."""
    s = pd.to_datetime(series, utc=True).dt.tz_localize(None)
    s = s.dt.ceil("h") if ceil else s.dt.floor("h")
    return s.to_numpy().astype("datetime64[h]")
