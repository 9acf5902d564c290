"""The predict job's warehouse reads: what the features may use at as_of, what was already
forecast, and the recent accuracy and past forecasts the snapshot shows beside the new ones.

Each reads only what was known at as_of, and only the locations `ids` when given (a batch,
its neighbours or one shard), so memory follows the batch, not the network.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from common.core.config import HORIZON_MAX_H
from common.core.schema import WEATHER
from common.core.timeutil import iso
from common.core.views import persistence_sql
from common.forecasting.features import HISTORY_HOURS, FeatureSpec, grid_columns
from common.forecasting.snapshot import Accuracy, HorizonAccuracy
from common.runtime.services import Services

ACCURACY_DAYS = 7


def _ids_clause(params: dict[str, Any], ids: list[str] | None) -> str:
    """The filter to the locations `ids` (none when None), its parameter added to `params`."""
    if ids is None:
        return ""
    params["ids"] = ids
    return " AND location_id IN UNNEST(@ids)"


def read_recent(
    services: Services,
    spec: FeatureSpec,
    as_of: dt.datetime,
    ids: list[str] | None = None,
    columns: list[str] | None = None,
    hours: int = HISTORY_HOURS,
) -> pd.DataFrame:
    """Observations the features may use at as_of: the last HISTORY_HOURS, nothing later;
    only the locations `ids` (a batch, or its neighbours), `columns` and `hours` when given."""
    cols = ", ".join(columns or grid_columns(spec))
    params: dict[str, Any] = {"start": as_of - dt.timedelta(hours=hours), "as_of": as_of}
    return services.warehouse.query(
        f"SELECT location_id, ts, {cols} FROM observations WHERE ts > @start AND ts <= @as_of"
        + _ids_clause(params, ids),
        params,
    )


def read_weather_forecasts(
    services: Services, as_of: dt.datetime, horizon: int, ids: list[str] | None = None
) -> pd.DataFrame:
    """For each (location, target hour), the newest weather forecast issued at or before as_of."""
    cols = ", ".join(WEATHER)
    params: dict[str, Any] = {"as_of": as_of, "end": as_of + dt.timedelta(hours=horizon)}
    return services.warehouse.query(
        f"SELECT location_id, ts, {cols} FROM weather_forecasts "
        "WHERE issued_at <= @as_of AND ts > @as_of AND ts <= @end"
        + _ids_clause(params, ids)
        + " QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, ts "
        "ORDER BY issued_at DESC, ingested_at DESC) = 1",
        params,
    )


def already_forecast(
    services: Services, version: str, target: str, as_of: dt.datetime, ids: list[str] | None
) -> set[str]:
    """Locations already forecast for (version, issued_at, target): a re-run skips them.
    Every forecast issued at as_of targets a later hour, so `target_ts > @as_of` changes
    nothing but the day partitions (by target_ts) BigQuery bills: the last day or two,
    not the whole table."""
    if ids is not None and not ids:
        return set()
    params: dict[str, Any] = {"as_of": as_of, "version": version, "target": target}
    done = services.warehouse.query(
        "SELECT DISTINCT location_id FROM forecasts "
        "WHERE issued_at = @as_of AND target_ts > @as_of AND model_version = @version "
        "AND target = @target" + _ids_clause(params, ids),
        params,
    )
    return set(done["location_id"].astype(str))


def recent_hindcast(
    services: Services,
    target: str,
    as_of: dt.datetime,
    start: dt.datetime,
    ids: list[str],
    horizon_h: int,
) -> dict[str, Any]:
    """Per location, the p50 forecast issued `horizon_h` hours before each hour of the recent
    window [start, as_of] (bounded: len(ids) x RECENT_HOURS values), for the dashboard's
    past-forecasts-against-observed chart. Re-runs count once (the newest row)."""
    if not ids:
        return {}
    rows = services.warehouse.query(
        "SELECT location_id, target_ts, yhat FROM forecasts WHERE target = @target "
        "AND horizon_h = @h AND target_ts >= @start AND target_ts <= @as_of "
        "AND issued_at <= @as_of AND location_id IN UNNEST(@ids) QUALIFY ROW_NUMBER() OVER ("
        "PARTITION BY location_id, target_ts ORDER BY created_at DESC, run_id DESC) = 1",
        {"target": target, "h": horizon_h, "start": start, "as_of": as_of, "ids": ids},
    )
    n = round((as_of - start) / dt.timedelta(hours=1)) + 1
    out: dict[str, Any] = {}
    for loc, group in rows.groupby("location_id"):
        values: list[float | None] = [None] * n
        for ts, yhat in zip(group["target_ts"], group["yhat"], strict=True):
            k = round((ts.to_pydatetime() - start) / dt.timedelta(hours=1))
            if 0 <= k < n:
                values[k] = round(float(yhat), 3)
        out[str(loc)] = {"horizon_h": horizon_h, "start": iso(start), "values": values}
    return out


def recent_accuracy(
    services: Services, target: str, as_of: dt.datetime, ids: list[str] | None = None
) -> Accuracy | None:
    """Accuracy of forecasts whose target hour fell in the last ACCURACY_DAYS (all versions),
    over the locations `ids` when given, else the network's (what the snapshot carries)."""
    start = as_of - dt.timedelta(days=ACCURACY_DAYS)
    if ids is not None and not ids:
        return None
    # The window's target hours (and persistence's issue hours: at most the longest horizon
    # before it), of the shard's locations only, read once for both groupings.
    p: dict[str, Any] = {
        "hours_after": start,
        "hours_through": as_of,
        "issued_after": start - dt.timedelta(hours=HORIZON_MAX_H),
    }
    if ids is not None:  # persistence_sql writes the filter; only its parameter is ours
        p["ids"] = ids
    both = services.warehouse.query(
        "SELECT horizon_h, location_id, COUNT(*) AS n, AVG(abs_error) AS mae, "
        "SQRT(AVG(error * error)) AS rmse, AVG(CAST(covered AS FLOAT64)) AS coverage, "
        "AVG(ABS(persisted - actual)) AS persistence_mae, "
        "SUM(CASE WHEN cams IS NULL THEN 0 ELSE 1 END) AS cams_n, "
        "AVG(cams_abs_error) AS cams_mae, "
        "AVG(CASE WHEN cams IS NOT NULL THEN abs_error END) AS cams_model_mae "
        f"FROM ({persistence_sql([target], ids is not None)}) AS a "
        "GROUP BY GROUPING SETS ((horizon_h), (location_id))",
        p,
    )
    if both.empty:
        return None
    by_h = both[both["location_id"].isna()].sort_values("horizon_h")
    by_loc = both[both["horizon_h"].isna()].sort_values("location_id")
    return Accuracy(
        window_start=start,
        window_end=as_of,
        network=ids is None,
        by_horizon=[
            HorizonAccuracy(
                horizon_h=int(r.horizon_h),
                n=int(r.n),
                mae=round(float(r.mae), 3),
                rmse=round(float(r.rmse), 3),
                coverage=round(float(r.coverage), 3) if pd.notna(r.coverage) else 0.0,
                persistence_mae=(
                    round(float(r.persistence_mae), 3) if pd.notna(r.persistence_mae) else None
                ),
                cams_n=int(r.cams_n or 0),
                cams_mae=round(float(r.cams_mae), 3) if pd.notna(r.cams_mae) else None,
                cams_model_mae=(
                    round(float(r.cams_model_mae), 3) if pd.notna(r.cams_model_mae) else None
                ),
            )
            for r in by_h.itertuples()
        ],
        by_location={str(r.location_id): round(float(r.mae), 3) for r in by_loc.itertuples()},
    )
