"""The train job's observations, read from the warehouse in bounded slices.

Small data (locations x window hours within `MAX_CELLS`) is read whole, once, into a frame:
every fit and evaluation then works as it always has. Larger data stays in the warehouse:
`WarehouseObservations` answers the sampled selection's reads (`common.forecasting.sampling.
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

from common.core.views import VIEWS
from common.forecasting import sampling
from common.forecasting.features import FeatureSpec, grid_columns
from common.forecasting.training import Observations
from common.monitoring.thresholds import DRIFT_WINDOW_HOURS
from common.warehouse.base import Warehouse

SCALE = 1000  # values enter the fingerprint as integer sums of round(value * SCALE)
_EPOCH = dt.date(1970, 1, 1)  # the summary's days count from it (UTC; data is after it)
REFERENCE_CELLS = 200_000  # rows read for the drift reference when the data is large
REFERENCE_WEEKS_PER_MONTH = 2  # week-long ranges per calendar month (each is left out of
# its month's reference once, to measure how far a normal week is: see drift.natural_psi)


@dataclass(frozen=True)
class WindowSummary:
    """What the version id, the metadata and the sampling need to know of the window."""

    fingerprint: str
    observations: int
    locations: int
    oldest: dt.datetime | None
    newest: dt.datetime | None
    location_ids: tuple[str, ...]
    target_by_day: tuple[tuple[dt.date, int], ...] = ()  # observed target values per UTC day

    def target_count(self, start: dt.datetime, end: dt.datetime) -> int:
        """Observed target values with ts in [start, end], pro rata within partial days."""
        total = 0.0
        for day, n in self.target_by_day:
            d0 = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            lo, hi = max(start, d0), min(end, d0 + dt.timedelta(hours=23))
            if hi >= lo:
                total += n * ((hi - lo) / dt.timedelta(hours=1) + 1) / 24
        return round(total)


def summarise(
    warehouse: Warehouse, spec: FeatureSpec, start: dt.datetime, end: dt.datetime
) -> WindowSummary:
    """One aggregate per location over ts in (start, end]: counts, extent, the newest
    ingestion, integer sums of every column (exact, so the same data always gives the same
    fingerprint); and the observed target values per day (for the sampling rate).

    Two queries the warehouse runs whole (one row per location, one per day come back), so
    the function's work does not grow with the window: at 100,000 locations x 365 days the
    former 175 time slices, each converted and folded in pandas, took ~200 of the summary's
    ~900 s of wall time (docs/studies/scale-train.md). DuckDB's memory limit
    (AIRCAST_DUCKDB_MEMORY_LIMIT) bounds what it keeps of the scan; the slices predate it.

    It reads `observations_raw`, not the `observations` view: keeping the newest row per key
    is a window over every row in range, which DuckDB holds in memory (1.7 GB for 8.6 M
    rows), while a plain aggregate streams. Any row appended to the window (a correction, a
    late hour) changes the fingerprint; `observations` counts raw rows (the same as the
    view's unless a row was corrected)."""
    cols = grid_columns(spec)
    sums = ", ".join(
        f"COUNT({c}) AS n_{c}, SUM(CAST(ROUND({c} * {SCALE}) AS INT64)) AS s_{c}" for c in cols
    )
    window = {"start": start, "end": end}
    frame = warehouse.query(
        "SELECT location_id, COUNT(*) AS n, MIN(ts) AS first_ts, MAX(ts) AS last_ts, "
        "MAX(ingested_at) AS ingested, "
        f"SUM(DIV(UNIX_SECONDS(ts), 3600)) AS hours, {sums} FROM observations_raw "
        "WHERE ts > @start AND ts <= @end GROUP BY location_id",
        window,
    )
    if not len(frame):
        return WindowSummary(hashlib.sha256(b"").hexdigest(), 0, 0, None, None, ())
    # Days since the epoch by integer division, not DATE(ts): DuckDB converts each
    # timestamp to a calendar date through its time zone code (10,000 x 365 days: 16.8 CPU
    # s against 4.6; ~170 s of the summary at 100,000); BigQuery gives the same UTC days.
    days = warehouse.query(
        f"SELECT DIV(UNIX_SECONDS(ts), 86400) AS day, COUNT({spec.target}) AS n "
        "FROM observations_raw WHERE ts > @start AND ts <= @end GROUP BY day ORDER BY day",
        window,
    )
    canon = _canonical(frame.assign(location_id=frame["location_id"].astype(str)))
    hashed = pd.util.hash_pandas_object(canon, index=False).to_numpy()
    return WindowSummary(
        fingerprint=hashlib.sha256(hashed.tobytes()).hexdigest(),
        observations=int(canon["n"].sum()),
        locations=len(canon),
        oldest=pd.Timestamp(frame["first_ts"].min()).to_pydatetime(),
        newest=pd.Timestamp(frame["last_ts"].max()).to_pydatetime(),
        location_ids=tuple(canon["location_id"]),
        target_by_day=tuple(
            (_EPOCH + dt.timedelta(days=int(d)), int(n))
            for d, n in zip(days["day"], days["n"], strict=True)
        ),
    )


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per location (sorted) from the aggregate: the integer sums as int64 (none
    where a column had no value), the extent and the newest ingestion as fixed-format
    text, ready to hash. The form the version ids have always hashed: changing it would
    give the same data a new version id."""
    numeric = [
        c for c in frame.columns if c not in ("location_id", "first_ts", "last_ts", "ingested")
    ]
    frame[numeric] = frame[numeric].apply(pd.to_numeric).fillna(0).astype("int64")
    grouped = frame.groupby("location_id", sort=True)
    canon = grouped[numeric].sum()
    for c, how in (("first_ts", "min"), ("last_ts", "max"), ("ingested", "max")):
        canon[c] = grouped[c].agg(how).dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return canon.reset_index()


class WarehouseObservations:
    """Observations with ts in (start, end] of the summary's locations, read on demand."""

    def __init__(
        self,
        warehouse: Warehouse,
        spec: FeatureSpec,
        start: dt.datetime,
        end: dt.datetime,
        summary: WindowSummary,
    ) -> None:
        self.warehouse, self.spec = warehouse, spec
        self.start, self.end = start, end
        self.summary = summary

    def location_ids(self) -> list[str]:
        return sorted(self.summary.location_ids)

    def target_count(self, start: dt.datetime, end: dt.datetime) -> int:
        """From the summary's counts per day (no query: an estimate of the issue pairs)."""
        return self.summary.target_count(max(start, self.start), min(end, self.end))

    def read(
        self, start: dt.datetime, end: dt.datetime, ids: Sequence[str], columns: Sequence[str]
    ) -> pd.DataFrame:
        if not ids:
            return pd.DataFrame(columns=["location_id", "ts", *columns])
        cols = ", ".join(c for c in columns if c in set(grid_columns(self.spec)))
        sql = newest_observations(
            f"location_id, ts, {cols}",
            "location_id IN UNNEST(@ids) AND ts > @a AND ts <= @b AND ts > @start AND ts <= @end",
        )
        return self.warehouse.query(
            f"{sql} ORDER BY ts, location_id",
            {"ids": list(ids), "a": start, "b": end, "start": self.start, "end": self.end},
        )

    def until(self, end: dt.datetime) -> WarehouseObservations:
        return WarehouseObservations(
            self.warehouse, self.spec, self.start, min(end, self.end), self.summary
        )


def newest_observations(select: str, where: str) -> str:
    """SQL for `observations` rows matching `where` (on its key columns only): the view's
    own newest-row QUALIFY over `observations_raw`, with `where` applied before it. Same
    rows as filtering the view, but DuckDB does not push an `IN UNNEST(@ids)` semi-join
    through the view's window: it would number every row of the time range first (8 s and
    1 GB for 10 days of 10,000 locations, instead of a fraction of a second)."""
    head, qualify = VIEWS["observations"].sql.split(" QUALIFY ", 1)
    if head != "SELECT * FROM observations_raw WHERE TRUE":
        raise AssertionError(f"the observations view changed shape: {head}")
    return f"SELECT {select} FROM observations_raw WHERE {where} QUALIFY {qualify}"


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
    if summary.locations * window_hours(start, end) <= (max_cells or sampling.MAX_CELLS):
        return read_observations(warehouse, spec, start, end)
    return WarehouseObservations(warehouse, spec, start, end, summary)


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


def reference_rows(
    obs: Observations, max_cells: int = REFERENCE_CELLS, per_month: int = REFERENCE_WEEKS_PER_MONTH
) -> pd.DataFrame:
    """The rows the drift reference is taken over: the whole frame, or from a source
    `per_month` seeded ranges as long as the drift window (a week) for each calendar month
    of the window (so that each month has its own deciles and the training weeks' own PSI
    can be measured, see common.monitoring.drift), for a seeded subset of locations so that
    at most `max_cells` rows are read. Day ranges, not scattered hours: a range filter
    reaches the table through the view's newest-row window, a list of hours makes DuckDB
    hold the whole view."""
    if isinstance(obs, pd.DataFrame):
        return obs
    rng = np.random.default_rng(0)
    day = dt.timedelta(days=1)
    n_days = max(window_hours(obs.start, obs.end) // 24, 1)
    span = min(DRIFT_WINDOW_HOURS // 24, n_days)  # a range as long as the drift window
    months: dict[int, list[int]] = {}  # calendar month of a range's middle -> its first day
    for d in range(0, n_days - span + 1, span):  # days back from the end, not overlapping
        months.setdefault((obs.end - d * day - span * day / 2).month, []).append(d)
    picked = sorted(
        int(d)
        for starts in months.values()
        for d in rng.choice(starts, min(per_month, len(starts)), replace=False)
    )
    ids = obs.location_ids()
    keep = max(max_cells // (24 * span * len(picked)), 1)
    if len(ids) > keep:
        ids = sorted(rng.choice(ids, keep, replace=False).tolist())
    frames = [
        obs.read(obs.end - (d + span) * day, obs.end - d * day, ids, grid_columns(obs.spec))
        for d in picked
    ]
    return pd.concat(frames, ignore_index=True)
