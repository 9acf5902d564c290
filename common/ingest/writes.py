"""What the ingest job lands in the warehouse: observations that change what `observations`
shows, the rejections, and the forecasts as issued (live and past); every row carries its
`Provenance`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.core.schema import TABLES, VARIABLES
from common.sources import Window
from common.sources.base import Rejection, payload_text
from common.warehouse import Warehouse


@dataclass(frozen=True)
class Provenance:
    """What every row this run lands carries: the source, the run and when it landed."""

    source: str
    run_id: str
    at: dt.datetime
    write: Callable[[str, pd.DataFrame], int]  # append once per delivery of the request


def write_past_forecasts(
    warehouse: Warehouse, table: str, frame: pd.DataFrame, landed: Provenance, window: Window
) -> int:
    """Past forecast rows not already kept (by location, issued_at, ts), issued by as_of,
    values outside physical ranges NULL."""
    if frame.empty:
        return 0
    frame = frame[pd.to_datetime(frame["issued_at"], utc=True) <= pd.Timestamp(window.as_of)]
    if frame.empty:
        return 0
    values = [c for c in TABLES[table].column_names if c in VARIABLES and c in frame]
    frame = _in_range(frame, values)
    days = issue_days(frame, values) if table == "air_quality_forecasts" else None
    have = warehouse.query(
        f"SELECT DISTINCT location_id, issued_at, ts FROM {table} "
        "WHERE location_id IN UNNEST(@ids) AND ts >= @start AND ts <= @end",
        {
            "ids": sorted(frame["location_id"].astype(str).unique()),
            "start": window.start,
            "end": window.end,
        },
    )
    if len(have):
        key = ["location_id", "issued_at", "ts"]
        frame = frame.copy()
        for c in ("issued_at", "ts"):
            frame[c] = pd.to_datetime(frame[c], utc=True)
            have[c] = pd.to_datetime(have[c], utc=True)
        merged = frame.merge(have.assign(_kept=True), on=key, how="left")
        frame = merged[merged["_kept"].isna()].drop(columns="_kept")
    extra = ["kind"] if table == "weather_forecasts" else ["provider"]
    cols = ["location_id", "issued_at", "ts", *values, *[c for c in extra if c in frame]]
    out = frame[cols].assign(source=landed.source, run_id=landed.run_id, ingested_at=landed.at)
    if table == "air_quality_forecasts" and "provider" not in out:
        out["provider"] = "cams"
    written = landed.write(table, out)
    if days is not None:
        write_issue_days(days, landed)
    return written


def new_or_changed(warehouse: Warehouse, accepted: pd.DataFrame) -> pd.DataFrame:
    """Accepted rows that change what `observations` shows, completed from the current row.

    A later fetch may correct a value but never erase one: a value the new row lacks (an
    endpoint that failed for this run, a variable not reported this time) is taken from
    the current row, so a partial answer cannot blank out what an earlier run stored.
    Rows equal to the current ones are not written again, so overlaps and re-runs add
    nothing to `observations_raw`.
    """
    if accepted.empty:
        return accepted
    current = warehouse.query(
        "SELECT * FROM observations "
        "WHERE location_id IN UNNEST(@ids) AND ts >= @start AND ts <= @end",
        {
            "ids": sorted(accepted["location_id"].unique()),
            "start": accepted["ts"].min(),
            "end": accepted["ts"].max(),
        },
    )
    if current.empty:
        return accepted
    cols = [c for c in VARIABLES if c in accepted.columns or c in current.columns]
    a = accepted.reindex(columns=["location_id", "ts", *cols])
    c = current.reindex(columns=["location_id", "ts", *cols])
    merged = a.merge(c, on=["location_id", "ts"], how="left", suffixes=("", "_old"), indicator=True)
    same = (merged["_merge"] == "both").to_numpy(copy=True)
    out = merged[["location_id", "ts"]].copy()
    for col in cols:
        new = pd.to_numeric(merged[col], errors="coerce").to_numpy(dtype=float)
        old = pd.to_numeric(merged[f"{col}_old"], errors="coerce").to_numpy(dtype=float)
        filled = np.where(np.isnan(new), old, new)
        same &= np.isclose(filled, old, rtol=0, atol=1e-9, equal_nan=True)
        out[col] = filled
    return out[~same].reset_index(drop=True)


def write_rejections(rejected: list[Rejection], landed: Provenance) -> int:
    if not rejected:
        return 0
    rows = pd.DataFrame(
        {
            "run_id": landed.run_id,
            "source": landed.source,
            "location_id": [r.location_id for r in rejected],
            "ts": [None if r.ts is None or pd.isna(r.ts) else r.ts for r in rejected],
            "reason": [r.reason for r in rejected],
            "payload": [
                r.payload if isinstance(r.payload, str) else payload_text(r.payload)
                for r in rejected
            ],
            "rejected_at": landed.at,
        }
    )
    return landed.write("rejected_rows", rows)


def write_forecasts(
    warehouse: Warehouse,
    table: str,
    frame: pd.DataFrame,
    landed: Provenance,
    as_of: dt.datetime,
) -> int:
    """Forecasts (weather, or CAMS air quality) for hours after as_of, as issued at as_of;
    values outside physical ranges become NULL.

    A forecast issued at as_of is written once per location: a re-run adds nothing.
    """
    if frame.empty:
        return 0
    frame = frame[frame["ts"] > pd.Timestamp(as_of)].copy()
    values = [c for c in TABLES[table].column_names if c in VARIABLES and c in frame]
    frame = _in_range(frame, values)
    days = issue_days(frame, values) if table == "air_quality_forecasts" else None
    # `ts > @as_of` holds for every row issued at as_of (above) and prunes the table's day
    # partitions (by ts) to the last few: without it BigQuery bills the whole table.
    done = warehouse.query(
        f"SELECT DISTINCT location_id FROM {table} "
        "WHERE issued_at = @as_of AND ts > @as_of AND location_id IN UNNEST(@ids)",
        {"as_of": as_of, "ids": sorted(frame["location_id"].unique())},
    )
    frame = frame[~frame["location_id"].isin(done["location_id"])]
    extra: dict[str, object] = {}
    if table == "weather_forecasts":
        extra["kind"] = "as-issued"
    else:  # the model behind an air-quality forecast (Open-Meteo serves CAMS)
        extra["provider"] = frame.get("provider", "cams")
    cols = ["location_id", "issued_at", "ts", *values]
    written = landed.write(
        table,
        frame[cols].assign(
            source=landed.source, run_id=landed.run_id, ingested_at=landed.at, **extra
        ),
    )
    if days is not None:
        write_issue_days(days, landed)
    return written


def _in_range(frame: pd.DataFrame, values: list[str]) -> pd.DataFrame:
    """The frame with values outside their variable's physical range NULL."""
    frame = frame.copy()
    for col in values:
        v = VARIABLES[col]
        num = pd.to_numeric(frame[col], errors="coerce")
        frame[col] = num.where((num >= v.low) & (num <= v.high))
    return frame


def issue_days(frame: pd.DataFrame, values: list[str]) -> pd.DataFrame:
    """Per UTC issue day and variable with a value: the earliest issue time and the rows
    (air_quality_forecast_days' own columns, without who wrote them).

    Taken from the rows delivered, before those already kept are dropped: a retry whose
    forecasts all landed before still writes the days (the append is once per delivery),
    and a kept row says the same day."""
    issued = pd.to_datetime(frame["issued_at"], utc=True)
    parts = []
    for col in values:
        has = frame[col].notna().to_numpy()
        if not has.any():
            continue
        at = issued[has]
        grouped = at.groupby(at.dt.floor("D")).agg(["min", "size"])
        parts.append(
            pd.DataFrame(
                {
                    "day": grouped.index,
                    "variable": col,
                    "first_issued": grouped["min"].to_numpy(),
                    "rows": grouped["size"].to_numpy(),
                }
            )
        )
    columns = ["day", "variable", "first_issued", "rows"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def write_issue_days(days: pd.DataFrame, landed: Provenance) -> int:
    """Append the landing's issue days (after its forecasts: a day is said once its rows
    are in; a failure between the two fails the run, and its retry writes the days)."""
    if days.empty:
        return 0
    return landed.write(
        "air_quality_forecast_days",
        days.assign(
            kind="landed", source=landed.source, run_id=landed.run_id, created_at=landed.at
        ),
    )
