"""The train job's observations, read from the warehouse in bounded slices.

Small data (locations x window hours within `MAX_CELLS`) is read whole, once, into a frame:
every fit and evaluation then works as it always has. Larger data stays in the warehouse:
`WarehouseObservations` answers the sampled selection's reads (`common.forecasting.training.
sampled_examples`) with SQL that runs unchanged on DuckDB and BigQuery, so memory follows
the row budget, not the data. Either way the version's fingerprint, the window's extent and
counts come from one aggregate per location (`summarise`), never from a whole-window frame.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.forecasting import training
from common.forecasting.features import FeatureSpec, grid_columns
from common.forecasting.training import Observations
from common.warehouse.base import Warehouse

SCALE = 1000  # values enter the fingerprint as integer sums of round(value * SCALE)
REFERENCE_CELLS = 200_000  # rows read for the drift reference when the data is large


@dataclass(frozen=True)
class WindowSummary:
    """What the version id and the metadata need to know of the window's observations."""

    fingerprint: str
    observations: int
    locations: int
    oldest: dt.datetime | None
    newest: dt.datetime | None
    location_ids: tuple[str, ...]
    target_values: int


def summarise(
    warehouse: Warehouse, spec: FeatureSpec, start: dt.datetime, end: dt.datetime
) -> WindowSummary:
    """One aggregate per location over ts in (start, end]: counts, extent, integer sums of
    every column (exact, so the same data always gives the same fingerprint)."""
    cols = grid_columns(spec)
    sums = ", ".join(
        f"COUNT({c}) AS n_{c}, SUM(CAST(ROUND({c} * {SCALE}) AS INT64)) AS s_{c}" for c in cols
    )
    frame = warehouse.query(
        "SELECT location_id, COUNT(*) AS n, MIN(ts) AS first_ts, MAX(ts) AS last_ts, "
        f"SUM(DIV(UNIX_SECONDS(ts), 3600)) AS hours, {sums} FROM observations "
        "WHERE ts > @start AND ts <= @end GROUP BY location_id ORDER BY location_id",
        {"start": start, "end": end},
    )
    if frame.empty:
        return WindowSummary(hashlib.sha256(b"").hexdigest(), 0, 0, None, None, (), 0)
    frame = frame.sort_values("location_id").reset_index(drop=True)
    canon = pd.DataFrame({"location_id": frame["location_id"].astype(str)})
    for c in frame.columns[1:]:
        v = frame[c]
        if isinstance(v.dtype, pd.DatetimeTZDtype):
            canon[c] = v.dt.strftime("%Y-%m-%dT%H:%M:%S")
        else:
            canon[c] = pd.to_numeric(v).fillna(0).astype("int64")
    hashed = pd.util.hash_pandas_object(canon, index=False).to_numpy()
    return WindowSummary(
        fingerprint=hashlib.sha256(hashed.tobytes()).hexdigest(),
        observations=int(canon["n"].sum()),
        locations=len(canon),
        oldest=pd.Timestamp(frame["first_ts"].min()).to_pydatetime(),
        newest=pd.Timestamp(frame["last_ts"].max()).to_pydatetime(),
        location_ids=tuple(canon["location_id"]),
        target_values=int(canon[f"n_{spec.target}"].sum()),
    )


class WarehouseObservations:
    """Observations with ts in (start, end] of the given locations, read on demand."""

    def __init__(
        self,
        warehouse: Warehouse,
        spec: FeatureSpec,
        start: dt.datetime,
        end: dt.datetime,
        location_ids: Sequence[str],
    ) -> None:
        self.warehouse, self.spec = warehouse, spec
        self.start, self.end = start, end
        self._ids = sorted(location_ids)

    def location_ids(self) -> list[str]:
        return list(self._ids)

    def target_count(self, start: dt.datetime, end: dt.datetime) -> int:
        t = self.spec.target
        frame = self.warehouse.query(
            f"SELECT COUNT({t}) AS n FROM observations WHERE ts >= @a AND ts <= @b "
            "AND ts > @start AND ts <= @end",
            {"a": start, "b": end, "start": self.start, "end": self.end},
        )
        return int(frame["n"].iloc[0]) if len(frame) else 0

    def read(
        self, start: dt.datetime, end: dt.datetime, ids: Sequence[str], columns: Sequence[str]
    ) -> pd.DataFrame:
        if not ids:
            return pd.DataFrame(columns=["location_id", "ts", *columns])
        cols = ", ".join(c for c in columns if c in set(grid_columns(self.spec)))
        return self.warehouse.query(
            f"SELECT location_id, ts, {cols} FROM observations "
            "WHERE location_id IN UNNEST(@ids) AND ts > @a AND ts <= @b "
            "AND ts > @start AND ts <= @end ORDER BY ts, location_id",
            {"ids": list(ids), "a": start, "b": end, "start": self.start, "end": self.end},
        )

    def until(self, end: dt.datetime) -> WarehouseObservations:
        return WarehouseObservations(
            self.warehouse, self.spec, self.start, min(end, self.end), self._ids
        )

    def at_hours(self, hours: Sequence[dt.datetime], ids: Sequence[str]) -> pd.DataFrame:
        """Every column of `ids` at the given hours (a bounded sample of the window)."""
        cols = ", ".join(grid_columns(self.spec))
        return self.warehouse.query(
            f"SELECT location_id, ts, {cols} FROM observations "
            "WHERE location_id IN UNNEST(@ids) AND ts IN UNNEST(@hours) "
            "AND ts > @start AND ts <= @end ORDER BY ts, location_id",
            {"ids": list(ids), "hours": list(hours), "start": self.start, "end": self.end},
        )


def window_hours(start: dt.datetime, end: dt.datetime) -> int:
    return max(int((end - start) / dt.timedelta(hours=1)), 1)


def observations(
    warehouse: Warehouse,
    spec: FeatureSpec,
    start: dt.datetime,
    end: dt.datetime,
    summary: WindowSummary,
    max_cells: int | None = None,
) -> Observations:
    """The whole window as a frame when it fits `max_cells` (default: the training grids'
    bound, MAX_CELLS), else a source read on demand."""
    if summary.locations * window_hours(start, end) <= (max_cells or training.MAX_CELLS):
        return read_observations(warehouse, spec, start, end)
    return WarehouseObservations(warehouse, spec, start, end, summary.location_ids)


def read_observations(
    warehouse: Warehouse, spec: FeatureSpec, start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """Every observation with ts in (start, end] (small windows only: see `observations`)."""
    cols = ", ".join(grid_columns(spec))
    return warehouse.query(
        f"SELECT location_id, ts, {cols} FROM observations "
        "WHERE ts > @start AND ts <= @as_of ORDER BY ts, location_id",
        {"start": start, "as_of": end},
    )


def recent(obs: Observations, since: dt.datetime, max_cells: int = REFERENCE_CELLS) -> pd.DataFrame:
    """Observations with ts after `since` (the drift sample's window); from a source, those
    of a seeded subset of locations so that at most `max_cells` rows are read."""
    if isinstance(obs, pd.DataFrame):
        return obs
    ids = obs.location_ids()
    keep = max(max_cells // window_hours(max(since, obs.start), obs.end), 1)
    if len(ids) > keep:
        ids = sorted(np.random.default_rng(0).choice(ids, keep, replace=False).tolist())
    return obs.read(since, obs.end, ids, grid_columns(obs.spec))


def reference_rows(obs: Observations, max_cells: int = REFERENCE_CELLS) -> pd.DataFrame:
    """The rows the drift reference's deciles are taken over: the whole frame, or from a
    source every location at seeded hours of the window (at most `max_cells` rows)."""
    if isinstance(obs, pd.DataFrame):
        return obs
    ids = obs.location_ids()
    n_hours = window_hours(obs.start, obs.end)
    count = min(max(max_cells // max(len(ids), 1), 1), n_hours)
    if len(ids) > max_cells:
        ids = sorted(np.random.default_rng(0).choice(ids, max_cells, replace=False).tolist())
    picked = np.sort(np.random.default_rng(0).choice(n_hours, count, replace=False))
    hours = [obs.end - dt.timedelta(hours=int(h)) for h in picked]
    return obs.at_hours(hours, ids)
