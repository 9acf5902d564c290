"""Predict's step of the combination weights (`common.forecasting.combination`): read the
state of the previous run, verify each expert on the forecasts whose hour has since been
observed, store the new state under this run's issue time and serve it.

The experts are verified on the current version's own forecasts: each forecast row keeps
the model's median before the combination (`yhat_model`), persistence is the value
observed at the issue time and seasonal naive the value a day before the target hour.
A version that was not the one of the previous state starts from the weights learned on
its calibration block (a new version, or one whose metadata predates the combination:
from equal weights).

Idempotent and bound to as_of, as the interval offsets are (`common.predict.intervals`): a
run whose issue time already has a state reuses it, and a step reads only forecast hours
up to as_of - VERIFY_LAG_H and state from before as_of. Its cost follows the hours
verified since the last state, not the history.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from common.core.schema import VARIABLES
from common.core.timeutil import UTC, iso
from common.forecasting.adaptation import MAX_CATCH_UP_H, VERIFY_LAG_H
from common.forecasting.combination import LOSS_CAP, Weights, group_name
from common.forecasting.place_weights import (
    LOSS_COLS,
    OFFSET_COLS,
    PLACE_LOOKBACK_H,
    PlaceWeights,
)
from common.forecasting.registry import Loaded
from common.monitoring.signals import combination_state
from common.runtime.runs import Run
from common.runtime.services import Services

HOUR = dt.timedelta(hours=1)


def latest_weights(services: Services, target: str, as_of: dt.datetime) -> pd.DataFrame:
    """`target`'s newest stored weights at or before as_of (within MAX_CATCH_UP_H)."""
    return combination_state(services.warehouse, target, as_of, as_of - MAX_CATCH_UP_H * HOUR)


def expert_losses(
    services: Services, target: str, version: str, after: dt.datetime, through: dt.datetime
) -> pd.DataFrame:
    """Per (target_ts, horizon_h) in (after, through]: `n` forecasts of `version` verified
    and each expert's absolute log1p errors on them, each clipped at LOSS_CAP, summed (rows where
    persistence or seasonal naive has no observation are left out, so the experts are
    compared on the same forecasts). A forecast written twice counts once, as its newest
    row. Every side is filtered on the hours it needs, so BigQuery reads their partitions."""
    if target not in VARIABLES:  # a column name below, so only a schema variable
        raise ValueError(f"unknown target {target!r}")

    def loss(value: str) -> str:
        return (
            f"SUM(LEAST(ABS(LN(1 + GREATEST(a.v, 0)) - LN(1 + GREATEST({value}, 0))), {LOSS_CAP}))"
        )

    return services.warehouse.query(
        "WITH f AS (SELECT location_id, issued_at, target_ts, horizon_h, yhat_model "
        "FROM forecasts WHERE target = @target AND model_version = @version "
        "AND target_ts > @after AND target_ts <= @through AND yhat_model IS NOT NULL "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, issued_at, target_ts "
        "ORDER BY created_at DESC, run_id DESC) = 1), "
        f"o AS (SELECT location_id, ts, {target} AS v FROM observations "
        f"WHERE ts > @observed_after AND ts <= @through AND {target} IS NOT NULL) "
        f"SELECT f.target_ts, f.horizon_h, COUNT(*) AS n, {loss('f.yhat_model')} AS model, "
        f"{loss('p.v')} AS persistence, {loss('s.v')} AS seasonal_naive "
        "FROM f JOIN o AS a ON a.location_id = f.location_id AND a.ts = f.target_ts "
        "JOIN o AS p ON p.location_id = f.location_id AND p.ts = f.issued_at "
        "JOIN o AS s ON s.location_id = f.location_id "
        "AND s.ts = TIMESTAMP_SUB(f.target_ts, INTERVAL 24 HOUR) "
        "GROUP BY f.target_ts, f.horizon_h ORDER BY f.target_ts, f.horizon_h",
        {
            "target": target,
            "version": version,
            "after": after,
            "through": through,
            "observed_after": after - 24 * HOUR,
        },
    )


def step_weights(services: Services, run: Run, target: str, loaded: Loaded) -> Weights:
    """The weights this run serves for `target`'s production version `loaded`."""
    as_of, horizon = run.as_of, loaded.model.horizon
    through = as_of - VERIFY_LAG_H * HOUR
    prev = latest_weights(services, target, as_of)
    same_version = len(prev) and (prev["model_version"] == loaded.version).all()
    if same_version and (pd.to_datetime(prev["as_of"], utc=True) == pd.Timestamp(as_of)).all():
        return Weights.from_rows(prev, horizon)  # this hour was stepped already: serve it again
    verified = pd.DataFrame()
    if not same_version:  # a new version (or the first run): where its calibration left it
        start = loaded.model.combination or Weights.uniform(horizon)
        weights = Weights(start.losses, start.gaps, through)
    else:
        before = Weights.from_rows(prev, horizon)
        since = as_of - MAX_CATCH_UP_H * HOUR
        after = max(before.verified_through or since, through - MAX_CATCH_UP_H * HOUR)
        if through > after:
            verified = expert_losses(services, target, loaded.version, after, through)
        weights = before.step(verified, max(through, after))
    counts = verified.groupby("horizon_h")["n"].sum() if len(verified) else pd.Series(dtype="int64")
    rows = weights.rows().assign(
        target=target,
        as_of=as_of,
        model_version=loaded.version,
        verified=lambda f: f["horizon_h"].map(counts).fillna(0).astype("int64"),
        run_id=run.run_id,
        created_at=dt.datetime.now(UTC),
    )
    services.warehouse.append("combination_weights", rows)
    return weights


def _group_case(groups: tuple[tuple[int, int], ...]) -> str:
    """SQL naming each horizon's group (`group_name`), as `horizon_groups` cuts them."""
    whens = " ".join(
        f"WHEN f.horizon_h BETWEEN {int(a)} AND {int(b)} THEN '{group_name((a, b))}'"
        for a, b in groups
    )
    return f"CASE {whens} END"


def latest_place_weights(
    services: Services, target: str, as_of: dt.datetime, shard: str, ids: list[str] | None
) -> pd.DataFrame:
    """The newest stored state of each place of predict shard `shard` ("k/N") at or before
    as_of, within PLACE_LOOKBACK_H: one row per (place, horizon group). Filtered on the
    partition (as_of) and the clustering (target, shard): a shard's locations are hashed
    across every location block, so only its own shard column lets BigQuery skip the
    other shards' rows. When the shard has none (its first run, or the shard count
    changed), its places' rows are looked up by id (`ids`; None: every place) once."""
    params: dict[str, object] = {
        "target": target,
        "as_of": as_of,
        "since": as_of - PLACE_LOOKBACK_H * HOUR,
    }
    sql = (
        "SELECT as_of, location_id, horizon_group, model_version, "
        + ", ".join([*LOSS_COLS, "gap", *OFFSET_COLS])
        + ", verified_through, started_at FROM place_combination_weights "
        "WHERE target = @target AND as_of <= @as_of AND as_of >= @since{where} "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, horizon_group "
        "ORDER BY as_of DESC, created_at DESC) = 1"
    )
    mine = services.warehouse.query(
        sql.format(where=" AND shard = @shard"), {**params, "shard": shard}
    )
    if len(mine):
        return mine
    if ids is None:
        return services.warehouse.query(sql.format(where=""), params)
    return services.warehouse.query(
        sql.format(where=" AND location_id IN UNNEST(@ids)"), {**params, "ids": ids}
    )


def place_losses(
    services: Services,
    target: str,
    version: str,
    after: dt.datetime,
    through: dt.datetime,
    groups: tuple[tuple[int, int], ...],
    ids: list[str] | None,
) -> pd.DataFrame:
    """Per (location_id, target_ts, horizon_group) in (after, through] for the places of
    `ids`: what `expert_losses` sums per hour and horizon, summed per place and group
    instead, and `below` / `above`: those forecasts whose observation fell below their
    p10 / above their p90 as served (what the place's own interval offsets step on).
    Filtered on the hours, so BigQuery bills the day partitions of those hours
    (a shard's ids, hashed across every location block, prune little: each shard reads
    the day's forecasts partition, as its `already_forecast` check does; docs/scale.md)."""
    if target not in VARIABLES:  # a column name below, so only a schema variable
        raise ValueError(f"unknown target {target!r}")
    only = " AND location_id IN UNNEST(@ids)" if ids is not None else ""

    def loss(value: str) -> str:
        return (
            f"SUM(LEAST(ABS(LN(1 + GREATEST(a.v, 0)) - LN(1 + GREATEST({value}, 0))), {LOSS_CAP}))"
        )

    params: dict[str, object] = {
        "target": target,
        "version": version,
        "after": after,
        "through": through,
        "observed_after": after - 24 * HOUR - groups[-1][1] * HOUR,
    }
    if ids is not None:
        params["ids"] = ids
    return services.warehouse.query(
        "WITH f AS (SELECT location_id, issued_at, target_ts, horizon_h, yhat_model, "
        "yhat_lower, yhat_upper FROM forecasts WHERE target = @target "
        "AND model_version = @version "
        f"AND target_ts > @after AND target_ts <= @through AND yhat_model IS NOT NULL{only} "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, issued_at, target_ts "
        "ORDER BY created_at DESC, run_id DESC) = 1), "
        f"o AS (SELECT location_id, ts, {target} AS v FROM observations "
        f"WHERE ts > @observed_after AND ts <= @through AND {target} IS NOT NULL{only}) "
        f"SELECT f.location_id, f.target_ts, {_group_case(groups)} AS horizon_group, "
        f"COUNT(*) AS n, {loss('f.yhat_model')} AS model, "
        f"{loss('p.v')} AS persistence, {loss('s.v')} AS seasonal_naive, "
        "SUM(CASE WHEN a.v < f.yhat_lower THEN 1 ELSE 0 END) AS below, "
        "SUM(CASE WHEN a.v > f.yhat_upper THEN 1 ELSE 0 END) AS above "
        "FROM f JOIN o AS a ON a.location_id = f.location_id AND a.ts = f.target_ts "
        "JOIN o AS p ON p.location_id = f.location_id AND p.ts = f.issued_at "
        "JOIN o AS s ON s.location_id = f.location_id "
        "AND s.ts = TIMESTAMP_SUB(f.target_ts, INTERVAL 24 HOUR) "
        "GROUP BY 1, 2, 3 ORDER BY 2, 1, 3",
        params,
    )


def step_place_weights(
    services: Services,
    run: Run,
    target: str,
    loaded: Loaded,
    network: Weights,
    ids: list[str] | None,
    shard: str = "0/1",
) -> PlaceWeights:
    """The weights of each place of one shard (`ids`; None: every place) this run serves:
    each place's state of the last run stepped on its own forecasts verified since (of
    the production version, as the network's), a place verified for the first time
    started from `network` (this run's network weights), stored by issue time. The
    state's own interval offsets step on the same forecasts (AIRCAST_PLACE_INTERVAL_ETA).

    Idempotent and bound to as_of as the network's step: a shard whose places have a
    state at this issue time serves it again (one append per shard and issue time, so
    all or none of its places have one); a step reads states from before as_of and
    forecast hours up to as_of - VERIFY_LAG_H. A run reads its own shard's states of the
    last day and its places' newly verified hours, and holds its places' rows only: its
    memory and time follow the shard, not the network."""
    as_of, horizon = run.as_of, loaded.model.horizon
    through = as_of - VERIFY_LAG_H * HOUR
    prev = latest_place_weights(services, target, as_of, shard, ids)
    if len(prev) and (pd.to_datetime(prev["as_of"], utc=True) == pd.Timestamp(as_of)).any():
        now = prev[pd.to_datetime(prev["as_of"], utc=True) == pd.Timestamp(as_of)]
        return PlaceWeights.from_rows(now, horizon)  # stepped already: serve it again
    before = PlaceWeights.from_rows(prev, horizon)
    if len(prev):  # the hours verified since this shard's last run (each place's own after)
        last = pd.to_datetime(prev["as_of"], utc=True).max().to_pydatetime()
        after = max(last - VERIFY_LAG_H * HOUR, through - PLACE_LOOKBACK_H * HOUR)
    else:  # no place of the shard has a state (its first run, or after a day's gap)
        after = through - PLACE_LOOKBACK_H * HOUR
    verified = (
        place_losses(services, target, loaded.version, after, through, before.groups, ids)
        if through > after
        else pd.DataFrame()
    )
    eta = services.settings.place_interval_eta
    weights = before.step(verified, network, through, loaded.version, issued=as_of, eta=eta)
    if weights.state.empty:
        return weights
    counts = (
        verified.groupby(["location_id", "horizon_group"])["n"].sum()
        if len(verified)
        else pd.Series(dtype="int64")
    )
    rows = weights.rows()
    keys = pd.MultiIndex.from_frame(rows[["location_id", "horizon_group"]])
    rows = rows.assign(
        target=target,
        as_of=as_of,
        verified=counts.reindex(keys).fillna(0).astype("int64").to_numpy(),
        shard=shard,
        run_id=run.run_id,
        created_at=dt.datetime.now(UTC),
    )
    # Keyed by target, issue time and shard: a twin delivery of this shard writes nothing.
    services.warehouse.append(
        "place_combination_weights", rows, key=f"place-weights|{target}|{iso(as_of)}|{shard}"
    )
    return weights
