"""The views of the warehouse and the SQL texts of accuracy and persistence they share.

Written once, in BigQuery's dialect with unqualified table names; the warehouse adapters
qualify and translate them (see `common.warehouse.sql`). The tables they read are in
`common.core.schema`; the monitor and the predict snapshot read accuracy through
`accuracy_sql`/`persistence_sql` rather than the view, to bound the hours they scan.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.core.aqi import MEAN_8H_HOURS, MEAN_8H_NEED, NOWCAST_HOURS, NOWCAST_RECENT, SCHEMES
from common.core.aqi_index import sql_category, sql_hourly_index, sql_hourly_inputs
from common.core.schema import POLLUTANTS, TABLES, VARIABLES, View


def _actual_case() -> str:
    """CASE expression picking the observed value of a forecast's target variable."""
    arms = " ".join(f"WHEN '{name}' THEN o.{name}" for name in VARIABLES)
    return f"CASE f.target {arms} END"


def accuracy_sql(bounded: bool = False) -> str:
    """The `forecast_accuracy` query. `bounded` keeps only target hours in
    (@hours_after, @hours_through] and filters *both* forecasts and observations on them,
    so a query over recent hours reads (and BigQuery bills) those hours' partitions: a
    filter on the view's target_ts reaches `observations` only if the optimiser carries it
    across the join, which BigQuery does not promise.

    `yhat` is the forecast as served; `yhat_model` the model's own median before its
    combination with the baselines (NULL for rows written before the combination).

    `cams` is the third baseline: the CAMS forecast of the target for the target hour, the
    newest issued at or before the forecast's issue time (the rule predict and train use
    for every forecast as issued), NULL where none was kept (never zero)."""
    hours = " AND {0} > @hours_after AND {0} <= @hours_through" if bounded else ""
    cams = " ".join(f"WHEN '{p}' THEN c.{p}" for p in POLLUTANTS)
    return (
        f"WITH f AS (SELECT * FROM forecasts WHERE TRUE{hours.format('target_ts')} "
        "QUALIFY ROW_NUMBER() OVER ("
        "PARTITION BY model_version, location_id, target, issued_at, target_ts "
        "ORDER BY created_at DESC, run_id DESC) = 1), "
        f"o AS (SELECT * FROM observations WHERE TRUE{hours.format('ts')}), "
        f"c AS (SELECT location_id, issued_at, ts, ingested_at, {', '.join(POLLUTANTS)} "
        f"FROM air_quality_forecasts WHERE TRUE{hours.format('ts')}), "
        f"j AS (SELECT f.*, {_actual_case()} AS actual FROM f "
        "JOIN o ON o.location_id = f.location_id AND o.ts = f.target_ts), "
        f"k AS (SELECT j.*, CASE j.target {cams} END AS cams FROM j "
        "LEFT JOIN c ON c.location_id = j.location_id AND c.ts = j.target_ts "
        "AND c.issued_at <= j.issued_at WHERE j.actual IS NOT NULL "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY j.model_version, j.location_id, j.target, "
        "j.issued_at, j.target_ts ORDER BY c.issued_at DESC, c.ingested_at DESC) = 1) "
        "SELECT location_id, model_version, target, issued_at, target_ts, horizon_h, "
        "yhat, yhat_lower, yhat_upper, actual, yhat - actual AS error, "
        "ABS(yhat - actual) AS abs_error, yhat_model, "
        "ABS(yhat_model - actual) AS model_abs_error, "
        "(actual >= yhat_lower AND actual <= yhat_upper) AS covered, "
        "cams, ABS(cams - actual) AS cams_abs_error "
        "FROM k"
    )


def persistence_sql(targets: Sequence[str], locations: bool = False) -> str:
    """`accuracy_sql(bounded=True)`'s rows of `targets` (schema variables) with `persisted`:
    the target's value observed at the issue time, which is persistence's forecast at every
    horizon (NULL when not observed). The monitor and the snapshot compare the model with
    it through this one text. The observations it joins are bounded as well: issue hours
    in (@issued_after, @hours_through], where @issued_after is at most the longest horizon
    before @hours_after, and only the targets' columns (each costs a pass through the
    observations view's dedup). `locations` keeps the rows of @ids only (one predict
    shard's)."""
    unknown = [t for t in targets if t not in VARIABLES]
    if unknown or not targets:
        raise ValueError(f"targets must be schema variables, not {list(targets)!r}")
    ids = " AND location_id IN UNNEST(@ids)" if locations else ""
    listed = ", ".join(f"'{t}'" for t in targets)
    arms = " ".join(f"WHEN '{t}' THEN p.{t}" for t in targets)
    # Only the hours some forecast of the window was issued at are deduplicated, not every
    # hour of (@issued_after, @hours_through]: a filter on ts keeps or drops whole
    # (location_id, ts) partitions of the dedup, so the rows it keeps are the view's.
    issued = (
        "ts IN (SELECT issued_at FROM forecasts WHERE target_ts > @hours_after "
        f"AND target_ts <= @hours_through AND target IN ({listed}){ids})"
    )
    where = f"ts > @issued_after AND ts <= @hours_through AND {issued}{ids}"
    observed = newest_observations(f"location_id, ts, {', '.join(targets)}", where)
    return (
        f"SELECT a.*, CASE a.target {arms} END AS persisted "
        f"FROM (SELECT * FROM ({accuracy_sql(bounded=True)}) AS v "
        f"WHERE target IN ({listed}){ids}) AS a "
        f"LEFT JOIN ({observed}) AS p ON p.location_id = a.location_id AND p.ts = a.issued_at"
    )


def newest_observations(columns: str, where: str) -> str:
    """`columns` of the newest row per (location_id, ts) of observations_raw among the rows
    `where` keeps: the `observations` view's rule, in one place. A `where` on location_id
    and ts filters before the dedup (which the view cannot promise: its filters come after
    the window function), so only the hours asked for are deduplicated."""
    return (
        f"SELECT {columns} FROM observations_raw WHERE {where} QUALIFY ROW_NUMBER() OVER ("
        "PARTITION BY location_id, ts ORDER BY ingested_at DESC, run_id DESC) = 1"
    )


_BANDS = ("yhat", "yhat_lower", "yhat_upper")


def _aqi_view() -> str:
    """`forecast_aqi`: latest_forecasts with each scheme's index of p50, p10 and p90 and
    their categories, rendered from the breakpoint tables and averaging rules of
    common.core.aqi, over the series the api indexes (common.serving.indices): for each
    forecast hour, the 12 hours up to it, observed up to the forecast's issue time and that
    issue's forecast after it. Per band: the NowCast of those hours and their last 8 hours'
    mean (each with the counts its rule needs), which `sql_hourly_index` turns into the index.
    """
    helpers, cols = _index_columns()
    carried = ", ".join(["f.*", *(f"g.nowcast_{b}" for b in _BANDS), *helpers])
    series = _aqi_series() + (
        f", h AS (SELECT {carried} FROM f JOIN g "
        "ON g.location_id = f.location_id AND g.target = f.target AND g.target_ts = f.target_ts) "
    )
    forecast = ", ".join(f"h.{c}" for c in TABLES["forecasts"].column_names)
    inner = f"SELECT {forecast}, {', '.join(cols)} FROM h"
    cats = []
    for scheme in SCHEMES.values():
        name = scheme.name.replace("-", "_")
        for label in ("aqi", "aqi_lower", "aqi_upper"):
            category = label.replace("aqi", "category")
            cats.append(f"{sql_category(scheme, f'{label}_{name}')} AS {category}_{name}")
    return f"{series}SELECT a.*, {', '.join(cats)} FROM ({inner}) AS a"


def _aqi_series() -> str:
    """The CTEs up to `g`: per forecast hour and band, the 12 hours up to it (observed to the
    issue time, that issue's forecast after), their NowCast and their last 8 hours' mean."""
    ago = "TIMESTAMP_SUB(f.target_ts, INTERVAL k HOUR)"
    values = ", ".join(
        f"CASE WHEN {ago} <= f.issued_at THEN {_actual_case()} ELSE p.{b} END AS v_{b}"
        for b in _BANDS
    )
    key = "location_id, target, target_ts"
    window = f"OVER (PARTITION BY {key})"
    spread = ", ".join(
        f"CASE WHEN MAX(v_{b}) {window} <= 0 THEN 1.0 "
        f"ELSE GREATEST(MIN(v_{b}) {window} / MAX(v_{b}) {window}, 0.5) END AS w_{b}"
        for b in _BANDS
    )

    def valid(b: str, hours: int) -> str:
        return f"SUM(CASE WHEN k < {hours} AND v_{b} IS NOT NULL THEN 1 ELSE 0 END)"

    stats = ", ".join(
        f"CASE WHEN {valid(b, NOWCAST_RECENT)} >= 2 THEN SUM(POW(w_{b}, k) * v_{b}) / "
        f"SUM(CASE WHEN v_{b} IS NOT NULL THEN POW(w_{b}, k) END) END AS nowcast_{b}, "
        f"CASE WHEN {valid(b, MEAN_8H_HOURS)} >= {MEAN_8H_NEED} "
        f"THEN AVG(CASE WHEN k < {MEAN_8H_HOURS} THEN v_{b} END) END AS mean8_{b}"
        for b in _BANDS
    )
    return (
        "WITH f AS (SELECT * FROM latest_forecasts), "
        # the forecasts of each issue (re-runs once), for the hours between it and each hour
        "p AS (SELECT location_id, target, issued_at, target_ts, yhat, yhat_lower, yhat_upper "
        "FROM forecasts WHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, "
        "target, issued_at, target_ts ORDER BY created_at DESC, run_id DESC) = 1), "
        f"w AS (SELECT f.location_id, f.target, f.target_ts, k, {values} FROM f "
        f"CROSS JOIN UNNEST(GENERATE_ARRAY(0, {NOWCAST_HOURS - 1})) AS k "
        f"LEFT JOIN observations AS o ON o.location_id = f.location_id AND o.ts = {ago} "
        "LEFT JOIN p ON p.location_id = f.location_id AND p.target = f.target "
        f"AND p.issued_at = f.issued_at AND p.target_ts = {ago}), "
        f"s AS (SELECT w.*, {spread} FROM w), "
        f"g AS (SELECT {key}, {stats} FROM s GROUP BY {key})"
    )


def _index_columns() -> tuple[list[str], list[str]]:
    """(the helper inputs each scheme's hourly index reads, carried in `h`; the index
    columns `aqi_<scheme>`, `aqi_lower_<scheme>`, `aqi_upper_<scheme>`, one CASE by target)."""
    helpers, cols = [], []
    for scheme in SCHEMES.values():
        name = scheme.name.replace("-", "_")
        for label, band in zip(("aqi", "aqi_lower", "aqi_upper"), _BANDS, strict=True):
            arms = []
            for p in scheme.hourly:
                inputs = {}
                for part, sql in sql_hourly_inputs(
                    scheme, p, f"f.{band}", f"g.mean8_{band}"
                ).items():
                    inputs[part] = f"h.{part}_{name}_{p}_{band}"
                    helpers.append(f"{sql} AS {part}_{name}_{p}_{band}")
                index = sql_hourly_index(scheme, p, f"h.{band}", f"h.nowcast_{band}", inputs)
                arms.append(f"WHEN '{p}' THEN {index}")
            cols.append(f"CASE h.target {' '.join(arms)} END AS {label}_{name}")
    return helpers, cols


VIEWS: dict[str, View] = {
    v.name: v
    for v in (
        View(
            "current_locations",
            "The current row of every location: the newest by updated_at per location_id.",
            "SELECT * FROM locations WHERE TRUE QUALIFY ROW_NUMBER() OVER ("
            "PARTITION BY location_id ORDER BY updated_at DESC) = 1",
            ("locations",),
        ),
        View(
            "observations",
            "The newest observation per (location_id, ts): later corrections supersede.",
            newest_observations("*", "TRUE"),
            ("observations_raw",),
        ),
        View(
            "latest_forecasts",
            "The newest forecast per (location_id, target, target_ts): one row per "
            "forecast hour for each forecast variable.",
            "SELECT * FROM forecasts WHERE TRUE QUALIFY ROW_NUMBER() OVER ("
            "PARTITION BY location_id, target, target_ts ORDER BY issued_at DESC, created_at DESC, "
            "run_id DESC) = 1",
            ("forecasts",),
        ),
        View(
            "run_status",
            "One row per run: its outcome row, or its start row with status `lost` once "
            "past its deadline (killed by a timeout, out of memory or a crash) and "
            "`running` before.",
            "SELECT run_id, function, as_of, CASE WHEN status = 'running' AND "
            "deadline_at < CURRENT_TIMESTAMP() THEN 'lost' ELSE status END AS status, "
            "started_at, finished_at, counts, error, params, deadline_at FROM runs "
            "WHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY "
            "CASE WHEN status = 'running' THEN 0 ELSE 1 END DESC, finished_at DESC) = 1",
            ("runs",),
        ),
        View(
            "forecast_accuracy",
            "Each forecast joined with what was later observed: error by horizon, "
            "model_version and location. Re-runs of one forecast count once. `cams` is the "
            "CAMS forecast for the place and hour (newest issued at or before the forecast's "
            "issue time; NULL where none was kept), the baseline 'aircast vs CAMS'.",
            accuracy_sql(),
            ("forecasts", "observations", "air_quality_forecasts"),
        ),
        View(
            "forecast_aqi",
            "latest_forecasts with the air-quality index of p50, p10 and p90 and their "
            "categories under each scheme (aqi_us_epa, category_us_epa, ..._cn_hj633), as "
            "the api computes them: the row's target pollutant's sub-index with the averaging "
            "its scheme reports (US EPA: the PM NowCast, the 8-hour O3 mean) over the hours "
            "observed up to the forecast's issue time and that issue's forecast after it. "
            "The overall index of an hour is the largest over its targets. See docs/aqi.md.",
            _aqi_view(),
            ("latest_forecasts", "forecasts", "observations"),
        ),
    )
}
