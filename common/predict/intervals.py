"""Predict's step of the adaptive interval offsets (`common.forecasting.adaptation`): read
the state of the previous run, verify the forecasts whose hour has since been observed,
store the new state under this run's issue time and publish it for the api.

Idempotent and bound to as_of: a run whose issue time already has a state reuses it (a
re-run, or a second shard of the same hour, serves the same intervals), and a step reads
only forecast hours up to as_of - VERIFY_LAG_H and state from before as_of, so a backfill
of an older hour is served what was known then. Each step reads the verified hours since
the last state (one hour in a normal run, at most MAX_CATCH_UP_H after a gap), not the
history: its cost follows the locations x horizons verified, not what is stored.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from common.core.schema import VARIABLES
from common.core.timeutil import UTC, iso
from common.forecasting.adaptation import MAX_CATCH_UP_H, VERIFY_LAG_H, Offsets
from common.runtime.runs import Run
from common.runtime.services import Services

HOUR = dt.timedelta(hours=1)


def latest_state(services: Services, target: str, as_of: dt.datetime) -> pd.DataFrame:
    """`target`'s newest stored offsets at or before as_of (within MAX_CATCH_UP_H), one row
    per horizon (several shards of one hour may each have written the same state)."""
    return services.warehouse.query(
        "SELECT as_of, horizon_h, lower_offset, upper_offset, verified_through "
        "FROM interval_offsets WHERE target = @target AND as_of <= @as_of AND as_of >= @since "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY horizon_h ORDER BY as_of DESC, "
        "created_at DESC) = 1",
        {"target": target, "as_of": as_of, "since": as_of - MAX_CATCH_UP_H * HOUR},
    )


def verified_hours(
    services: Services, target: str, after: dt.datetime, through: dt.datetime
) -> pd.DataFrame:
    """Per (target_ts, horizon_h) in (after, through]: forecasts verified (`n`) and those
    below their p10 / above their p90 as served. A forecast written twice for one issue
    time (a re-run after a promotion) counts once, as the newest row, the one served.

    Both sides are filtered on the hours verified, so the warehouse reads (and BigQuery
    bills) those hours' partitions, not the history."""
    if target not in VARIABLES:  # a column name below, so only a schema variable
        raise ValueError(f"unknown target {target!r}")
    hours = "> @after AND {0} <= @through"
    return services.warehouse.query(
        "WITH f AS (SELECT location_id, target_ts, horizon_h, yhat_lower, yhat_upper "
        f"FROM forecasts WHERE target = @target AND target_ts {hours.format('target_ts')} "
        "AND yhat_lower IS NOT NULL AND yhat_upper IS NOT NULL "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, issued_at, target_ts "
        "ORDER BY created_at DESC, run_id DESC) = 1), "
        f"o AS (SELECT location_id, ts, {target} AS actual FROM observations "
        f"WHERE ts {hours.format('ts')} AND {target} IS NOT NULL) "
        "SELECT f.target_ts, f.horizon_h, COUNT(*) AS n, "
        "SUM(CASE WHEN o.actual < f.yhat_lower THEN 1 ELSE 0 END) AS below, "
        "SUM(CASE WHEN o.actual > f.yhat_upper THEN 1 ELSE 0 END) AS above "
        "FROM f JOIN o ON o.location_id = f.location_id AND o.ts = f.target_ts "
        "GROUP BY f.target_ts, f.horizon_h ORDER BY f.target_ts, f.horizon_h",
        {"target": target, "after": after, "through": through},
    )


def step_offsets(services: Services, run: Run, target: str, horizon: int) -> Offsets | None:
    """The offsets this run serves for `target` (None when AIRCAST_INTERVAL_ADAPT_ETA is 0)."""
    eta = services.settings.interval_adapt_eta
    if eta == 0:
        return None
    as_of = run.as_of
    through = as_of - VERIFY_LAG_H * HOUR
    since = as_of - MAX_CATCH_UP_H * HOUR
    prev = latest_state(services, target, as_of)
    if len(prev) and (pd.to_datetime(prev["as_of"], utc=True) == pd.Timestamp(as_of)).all():
        return Offsets.from_rows(prev, horizon)  # this hour was stepped already: serve it again
    if prev.empty:  # the first run (or the first after a long gap): start from the calibration
        offsets, verified = Offsets.zero(horizon, through), pd.DataFrame()
    else:
        before = Offsets.from_rows(prev, horizon)
        after = max(before.verified_through or since, through - MAX_CATCH_UP_H * HOUR)
        verified = (
            verified_hours(services, target, after, through) if through > after else pd.DataFrame()
        )
        offsets = before.step(verified, eta, max(through, after))
    counts = verified.groupby("horizon_h")["n"].sum() if len(verified) else pd.Series(dtype="int64")
    rows = offsets.rows().assign(
        target=target,
        as_of=as_of,
        verified=lambda f: f["horizon_h"].map(counts).fillna(0).astype("int64"),
        run_id=run.run_id,
        created_at=dt.datetime.now(UTC),
    )
    # Keyed by target and issue time: a twin delivery of this predict writes nothing.
    services.warehouse.append("interval_offsets", rows, key=f"intervals|{target}|{iso(as_of)}")
    return offsets
