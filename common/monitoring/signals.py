"""The health signals, each one SQL query over the warehouse parameterised by `as_of`.

They are queries rather than views because every one of them is relative to `as_of`
(a lag behind it, a window ending at it, and nothing written for a later hour may count),
which a view cannot take; the SQL is written once, in BigQuery's dialect, and runs
unchanged on DuckDB (the adapters translate it), like the views in common.core.views.

Runs are read through the `run_status` view (one row per run: its outcome, or `running`,
or `lost` once a run that never finished is past its deadline); a lost run counts as a
failure.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from common.core.config import HORIZON_MAX_H
from common.core.views import persistence_sql
from common.forecasting import combination
from common.forecasting.adaptation import MAX_OFFSET
from common.forecasting.place_weights import PLACE_LOOKBACK_H
from common.monitoring import thresholds as th
from common.warehouse import Warehouse

COMPLETED = ("success", "partial", "rejected")  # a run that ran to its end
# The monitor's horizon groups are the gate's and the per-place weights' (1-3, 4-12, 13-24),
# so a group the gate serves as persistence, or a place's weights step on, is reported as
# that group. A deployment may forecast up to HORIZON_MAX_H hours; the horizons beyond the
# last group, which the gate does not score, are reported together in one more group.
HORIZON_GROUPS: tuple[tuple[int, int], ...] = (
    *combination.HORIZON_GROUPS,
    (combination.HORIZON_GROUPS[-1][1] + 1, HORIZON_MAX_H),
)
# A forecast's horizon group as SQL ("1-3", ...), the same in every query that groups by it.
_HORIZON_GROUP = (
    "CASE "
    + " ".join(
        f"WHEN a.horizon_h <= {hi} THEN '{combination.group_name((lo, hi))}'"
        for lo, hi in HORIZON_GROUPS
    )
    + " END"
)


def _hours_before(as_of: dt.datetime, times: pd.Series) -> pd.Series:
    """Hours from each time to as_of (NaN where the time is missing)."""
    return (pd.Timestamp(as_of) - pd.to_datetime(times, utc=True)).dt.total_seconds() / 3600


def freshness(warehouse: Warehouse, as_of: dt.datetime) -> pd.DataFrame:
    """Per active location (and its source): the newest observed hour at or before as_of
    within the lookback (NULL: silent for longer), and its lag in hours.

    The lookback is filtered in the joined subquery, not the join's ON clause: there it is
    a filter on the partition column that BigQuery prunes by (the lookback's days, not
    the year of observations) and the rows are the same."""
    frame = warehouse.query(
        "SELECT l.location_id, l.source, MAX(o.ts) AS newest "
        "FROM current_locations AS l LEFT JOIN (SELECT location_id, ts FROM observations_raw "
        "WHERE ts <= @as_of AND ts > @since) AS o ON o.location_id = l.location_id "
        "WHERE COALESCE(l.active, TRUE) GROUP BY l.location_id, l.source "
        "ORDER BY l.location_id",
        {"as_of": as_of, "since": as_of - dt.timedelta(days=th.FRESHNESS_LOOKBACK_DAYS)},
    )
    frame["lag_h"] = _hours_before(as_of, frame["newest"])
    return frame


def runs(warehouse: Warehouse, as_of: dt.datetime, now: dt.datetime | None = None) -> pd.DataFrame:
    """Per function, over the runs of the window: runs, failures (lost ones among them, also
    counted apart), caller's requests refused (a 4xx: not failures), failures no later run
    of the same as_of recovered (what is left after the scheduler's retries), runs still
    running and since when, the last completed run's as_of and the hours since it.

    The window holds the runs whose as_of lies in the RUNS_WINDOW_HOURS before as_of and,
    by the wall clock, those that started in the RUNS_WINDOW_HOURS before now: a run
    killed with any other as_of (a backfill's, a mistyped one) is still seen."""
    completed = ", ".join(f"'{s}'" for s in COMPLETED)
    now = now or dt.datetime.now(dt.UTC)
    window = dt.timedelta(hours=th.RUNS_WINDOW_HOURS)
    frame = warehouse.query(
        "WITH r AS (SELECT *, ((as_of > @since AND as_of <= @as_of) OR "
        "(started_at > @started_since AND started_at <= @now)) AS recent FROM run_status), "
        "g AS (SELECT function, as_of, "
        f"MAX(CASE WHEN status IN ({completed}) THEN 1 ELSE 0 END) AS ok, "
        "SUM(CASE WHEN recent AND status IN ('failed', 'lost') THEN 1 ELSE 0 END) AS failed, "
        "SUM(CASE WHEN recent AND status = 'lost' THEN 1 ELSE 0 END) AS lost, "
        "SUM(CASE WHEN recent AND status = 'refused' THEN 1 ELSE 0 END) AS refused, "
        "SUM(CASE WHEN recent AND status = 'running' THEN 1 ELSE 0 END) AS running, "
        "MIN(CASE WHEN recent AND status = 'running' THEN started_at END) AS running_since, "
        "SUM(CASE WHEN recent THEN 1 ELSE 0 END) AS n, "
        "MAX(CASE WHEN recent THEN 1 ELSE 0 END) AS seen "
        "FROM r WHERE as_of <= @as_of OR recent GROUP BY function, as_of) "
        "SELECT function, SUM(n) AS runs, SUM(failed) AS failed, SUM(lost) AS lost, "
        "SUM(refused) AS refused, SUM(running) AS running, MIN(running_since) AS running_since, "
        "SUM(CASE WHEN seen = 1 AND ok = 0 AND failed > 0 THEN 1 ELSE 0 END) AS unrecovered, "
        "MAX(CASE WHEN ok = 1 AND as_of <= @as_of THEN as_of END) AS last_success "
        "FROM g GROUP BY function ORDER BY function",
        {
            "as_of": as_of,
            "since": as_of - window,
            "now": now,
            "started_since": now - window,
        },
    )
    frame["hours_since_success"] = _hours_before(as_of, frame["last_success"])
    frame["running_min"] = _hours_before(now, frame["running_since"]) * 60
    return frame


def rejected(warehouse: Warehouse, as_of: dt.datetime) -> pd.DataFrame:
    """Per source and reason: rejected rows of the ingest runs in the window, beside the
    rows those runs wrote to observations_raw (the share's denominator adds both) and the
    source's runs still running (`running`: counted once they end).

    A run's written rows are the `written` count of its outcome row, which ingest keeps as
    the rows land (a failed run's row says what landed before it failed): the runs are read,
    not the observations. Counting observations_raw by run_id bounds no partition (a run,
    a backfill above all, may write hours of any age), so it is done only for the runs
    whose row cannot say: lost ones, failed ones recorded without the count (written before
    it was kept), none of them in a healthy day. Rejections are counted by run_id in the
    partitions since the first of the runs started (a rejection is stamped while its run
    runs)."""
    runs = warehouse.query(
        "SELECT run_id, status, started_at, counts, params FROM run_status "
        "WHERE function = 'ingest' AND as_of > @since AND as_of <= @as_of",
        {"as_of": as_of, "since": as_of - dt.timedelta(hours=th.REJECTED_WINDOW_HOURS)},
    )
    accepted: dict[str, int] = {}
    running: dict[str, int] = {}
    ended: list[str] = []  # every run that ended (or was lost): their rejections count
    unsaid: list[str] = []  # those whose row does not say what they wrote
    for run in runs.itertuples():
        params, counts = _json_object(run.params), _json_object(run.counts)
        source = params.get("source")
        if run.status == "running":  # still landing: counted when its outcome row is in
            key = source if isinstance(source, str) else "(unknown)"
            running[key] = running.get(key, 0) + 1
            continue
        ended.append(str(run.run_id))
        written = _written(counts, params)
        if written is None or not isinstance(source, str):
            unsaid.append(str(run.run_id))
        else:
            accepted[source] = accepted.get(source, 0) + written
    rej = pd.DataFrame(columns=["source", "reason", "rejected"])
    if ended:
        first = pd.to_datetime(runs.loc[runs["run_id"].isin(ended), "started_at"], utc=True).min()
        rej = warehouse.query(
            "SELECT source, reason, COUNT(*) AS rejected FROM rejected_rows "
            "WHERE run_id IN UNNEST(@ids) AND rejected_at >= @since "
            "GROUP BY source, reason",
            {"ids": sorted(ended), "since": first - _STAMP_MARGIN},
        )
    if unsaid:
        scanned = warehouse.query(
            "SELECT source, COUNT(*) AS accepted FROM observations_raw "
            "WHERE run_id IN UNNEST(@ids) GROUP BY source",
            {"ids": sorted(unsaid)},
        )
        for source, n in zip(scanned["source"], scanned["accepted"], strict=True):
            accepted[str(source)] = accepted.get(str(source), 0) + int(n)
    rows = [(str(r.source), r.reason, int(r.rejected)) for r in rej.itertuples() if int(r.rejected)]
    have = {source for source, _, _ in rows}
    rows += [(s, None, 0) for s in (accepted.keys() | running.keys()) - have]
    rows.sort(key=lambda r: (r[0], r[1] is None, r[1] or ""))
    return pd.DataFrame(
        [(s, reason, n, accepted.get(s, 0), running.get(s, 0)) for s, reason, n in rows],
        columns=["source", "reason", "rejected", "accepted", "running"],
    ).astype({"rejected": int, "accepted": int, "running": int})


# A rejection is stamped after its run started, by the same process's clock; the margin only
# guards a clock stepped back meanwhile (it costs at most one more day partition).
_STAMP_MARGIN = dt.timedelta(hours=1)


def _written(counts: dict[str, Any], params: dict[str, Any]) -> int | None:
    """Rows an ingest run wrote to observations_raw, as its row says (None: it does not)."""
    if params.get("forecasts") is True:  # a backfill of past forecasts writes none
        return 0
    written = counts.get("written")
    return int(written) if isinstance(written, int) and not isinstance(written, bool) else None


def _json_object(text: Any) -> dict[str, Any]:
    """A JSON text column as a dict ({} when empty or not an object)."""
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def accuracy(warehouse: Warehouse, as_of: dt.datetime, targets: Sequence[str]) -> pd.DataFrame:
    """The verified forecasts of `targets` with target_ts in the window, in one read of the
    window's forecasts and observations, per target, model version, horizon group and
    whether the place was served the network's combination weights (`new_place`): the
    error as served (`served_abs`: `yhat`, the combination), the model's own (`model_abs`:
    `yhat_model`, the served one for rows written before the combination), persistence's
    on the same rows (the value observed at issued_at), the band's hits, and the CAMS
    baseline on the rows that have a CAMS forecast (cams_n, cams_abs, and the served error
    there, model_abs_cams; NULL sums where none). `by_version` and `served` take what the
    monitor reports from it.

    A forecast's place is new (`new_place`) when it had no weights of its own when the
    forecast was issued: no `place_combination_weights` row of its target and place at
    the forecast's issue time (predict writes one per place with a state every run, before
    it forecasts with it; `_own_weights_sql`)."""
    since = as_of - dt.timedelta(hours=th.ACCURACY_WINDOW_HOURS)
    # Both joins of persistence_sql read only the hours they need: the window's target
    # hours, and the issue hours persistence reads (at most the longest horizon before it).
    params: dict[str, object] = {
        "hours_after": since,
        "hours_through": as_of,
        "issued_after": since - dt.timedelta(hours=HORIZON_MAX_H),
    }
    frame = warehouse.query(
        f"SELECT a.target, a.model_version, {_HORIZON_GROUP} AS horizons, "
        "w.location_id IS NULL AS new_place, COUNT(*) AS n, SUM(a.abs_error) AS served_abs, "
        "SUM(COALESCE(a.model_abs_error, a.abs_error)) AS model_abs, "
        "SUM(ABS(a.persisted - a.actual)) AS persistence_abs, "
        "SUM(CASE WHEN a.covered THEN 1 ELSE 0 END) AS covered, "
        "SUM(CASE WHEN a.covered IS NULL THEN 0 ELSE 1 END) AS banded, "
        "SUM(CASE WHEN a.cams IS NULL THEN 0 ELSE 1 END) AS cams_n, "
        "SUM(a.cams_abs_error) AS cams_abs, "
        "SUM(CASE WHEN a.cams IS NOT NULL THEN a.abs_error END) AS model_abs_cams "
        f"FROM ({persistence_sql(targets)}) AS a LEFT JOIN ({_own_weights_sql(targets)}) AS w "
        "ON w.target = a.target AND w.location_id = a.location_id AND w.as_of = a.issued_at "
        "WHERE a.persisted IS NOT NULL "
        "GROUP BY a.target, a.model_version, horizons, new_place "
        "ORDER BY a.target, a.model_version, horizons, new_place",
        params,
    )
    for c in ("n", "covered", "banded", "cams_n"):
        frame[c] = frame[c].astype(int)
    for c in ("served_abs", "model_abs", "persistence_abs", "cams_abs", "model_abs_cams"):
        frame[c] = pd.to_numeric(frame[c]).astype(float)
    frame["new_place"] = frame["new_place"].astype(bool)
    return frame


def _own_weights_sql(targets: Sequence[str]) -> str:
    """The (target, place, issue time) at which a place of `targets` was served weights of
    its own, over the issue hours `persistence_sql` reads (@issued_after, @hours_through]:
    a filter on place_combination_weights' partition column, so it reads those days of
    three columns. Nothing stored for an issue time after @hours_through (as_of) counts."""
    listed = ", ".join(f"'{t}'" for t in targets)
    return (
        "SELECT DISTINCT target, location_id, as_of FROM place_combination_weights "
        f"WHERE as_of > @issued_after AND as_of <= @hours_through AND target IN ({listed})"
    )


def by_version(frame: pd.DataFrame) -> pd.DataFrame:
    """`accuracy`'s rows per model version and horizon group (every target and place):
    each version's record. A sum of only NULLs stays NULL (no CAMS forecast is not zero)."""
    columns = ["n", "served_abs", "persistence_abs", "covered", "banded", "cams_n"]
    columns += ["cams_abs", "model_abs_cams"]
    return (
        frame.groupby(["model_version", "horizons"], sort=True)[columns]
        .sum(min_count=1)
        .reset_index()
    )


def served(frame: pd.DataFrame, target: str, version: str) -> pd.DataFrame:
    """`accuracy`'s rows of `target`'s `version`, per horizon group and new place."""
    rows = frame[(frame["target"] == target) & (frame["model_version"] == version)]
    return rows.drop(columns=["target", "model_version"]).reset_index(drop=True)


def combination_state(
    warehouse: Warehouse, target: str, as_of: dt.datetime, since: dt.datetime
) -> pd.DataFrame:
    """`target`'s newest stored combination weights with as_of in [since, as_of]: one row
    per (horizon, expert), with the version they weighed (what predict steps from and
    what the monitor shows beside the accuracy)."""
    return warehouse.query(
        "SELECT as_of, model_version, horizon_h, expert, weight, cum_loss, gap, verified_through "
        "FROM combination_weights WHERE target = @target AND as_of <= @as_of "
        "AND as_of >= @since QUALIFY ROW_NUMBER() OVER (PARTITION BY horizon_h, expert "
        "ORDER BY as_of DESC, created_at DESC) = 1",
        {"target": target, "as_of": as_of, "since": since},
    )


def place_weights(warehouse: Warehouse, target: str, as_of: dt.datetime) -> pd.DataFrame:
    """Per horizon group, the weights `target`'s places are served now: each place's newest
    state at or before as_of within PLACE_LOOKBACK_H (predict's own read-back rule: an
    older state is restarted, not served), summed up in the query so the monitor gets a
    row per group, not per place. `places`; how many the model, persistence and seasonal
    naive lead (the largest weight; a tie goes to the first of them in that order); the
    model's weight across the places (min, mean, max); the places' own interval offsets
    (mean lower and upper, and `offsets_at_clip`: places whose offset in the group sits at
    MAX_OFFSET either way, a band the model cannot calibrate there; a row from before
    places had offsets counts as 0)."""
    m, p, s = "w.weight_model", "w.weight_persistence", "w.weight_seasonal_naive"
    model_leads = f"{m} >= {p} AND {m} >= {s}"
    lo, hi = "COALESCE(w.lower_offset, 0)", "COALESCE(w.upper_offset, 0)"
    return warehouse.query(
        "SELECT w.horizon_group, COUNT(*) AS places, "
        f"SUM(CASE WHEN {model_leads} THEN 1 ELSE 0 END) AS lead_model, "
        f"SUM(CASE WHEN NOT ({model_leads}) AND {p} >= {s} THEN 1 ELSE 0 END) "
        "AS lead_persistence, "
        f"SUM(CASE WHEN NOT ({model_leads}) AND {p} < {s} THEN 1 ELSE 0 END) "
        "AS lead_seasonal_naive, "
        f"MIN({m}) AS model_min, AVG({m}) AS model_mean, MAX({m}) AS model_max, "
        f"AVG({lo}) AS lower_offset_mean, AVG({hi}) AS upper_offset_mean, "
        f"SUM(CASE WHEN ABS({lo}) >= @clip OR ABS({hi}) >= @clip THEN 1 ELSE 0 END) "
        "AS offsets_at_clip "
        "FROM (SELECT location_id, horizon_group, weight_model, weight_persistence, "
        "weight_seasonal_naive, lower_offset, upper_offset FROM place_combination_weights "
        "WHERE target = @target "
        "AND as_of <= @as_of AND as_of >= @since QUALIFY ROW_NUMBER() OVER (PARTITION BY "
        "location_id, horizon_group ORDER BY as_of DESC, created_at DESC) = 1) AS w "
        "GROUP BY w.horizon_group ORDER BY w.horizon_group",
        {
            "target": target,
            "as_of": as_of,
            "since": as_of - dt.timedelta(hours=PLACE_LOOKBACK_H),
            "clip": MAX_OFFSET,
        },
    )


def recent_inputs(
    warehouse: Warehouse,
    columns: list[str],
    start: dt.datetime,
    end: dt.datetime,
    limit: int,
    locations: list[str] | None = None,
) -> pd.DataFrame:
    """Observed inputs (the columns the features read) with ts in (start, end], newest
    first, at most `limit` rows; of `locations` only when given (a sample)."""
    cols = ", ".join(columns)
    params: dict[str, object] = {"start": start, "end": end}
    where = ""
    if locations is not None:
        where, params["ids"] = " AND location_id IN UNNEST(@ids)", locations
    return warehouse.query(
        f"SELECT {cols} FROM observations WHERE ts > @start AND ts <= @end{where} "
        f"ORDER BY ts DESC, location_id LIMIT {int(limit)}",
        params,
    )
