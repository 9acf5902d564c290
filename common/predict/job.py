"""The predict job: production model x every active location at as_of -> forecasts + snapshot.

Scale: a request may name one shard of N (`shard`, `shards`; a stable hash of the location
id picks it, see `common.core.sharding`), so N scheduler jobs split the network with no
coordinator; within a shard, locations go through read -> features -> model -> write in
batches of AIRCAST_PREDICT_BATCH_LOCATIONS, so memory follows the batch, not the network.
Each shard publishes its own snapshot part.

Each target of AIRCAST_TARGETS is forecast by its own production model, shard by shard as
above, and published as its own snapshot (`snapshot_key`); a target without a model yet is
skipped with the reason.

Reads only what was known at as_of: observations with ts in (as_of - HISTORY_HOURS, as_of]
and, when the model uses weather at the target hour, the newest weather forecast issued at
or before as_of for each target hour. Features come from `common.forecasting.features`,
the code that built the training rows.

Each target's p10/p90 are widened by its adaptive interval offsets, stepped once per issue
time from the forecasts verified since the last run (`common.predict.intervals`).

Idempotent: the rows of one (model_version, issued_at, target) are written once per
location; a re-run (or a retry after a failure part-way through the append) writes only
the locations still missing and answers the same forecasts. The serving snapshot moves
forward only: predicting an older as_of (a backfill) never replaces a newer snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from common.core.config import HORIZON_MAX_H
from common.core.errors import Conflict
from common.core.faults import checkpoint
from common.core.logs import get_logger
from common.core.schema import VARIABLES, WEATHER, persistence_sql
from common.core.sharding import MAX_SHARDS, shard_of, shards_to_run
from common.core.timeutil import UTC, UTCDateTime, iso
from common.forecasting.adaptation import Offsets
from common.forecasting.features import (
    HISTORY_HOURS,
    REGION_HOURS,
    FeatureSpec,
    grid_columns,
    neighbours_of,
)
from common.forecasting.forecast import forecast_frame
from common.forecasting.registry import Loaded, Registry, model_name_for
from common.forecasting.snapshot import (
    SCHEMA_VERSION,
    SNAPSHOT_KEY,
    Accuracy,
    HorizonAccuracy,
    LocationInfo,
    intervals_key,
    issued_at_of,
    snapshot_key,
)
from common.predict.intervals import step_offsets
from common.runtime import locations as locations_mod
from common.runtime.runs import Outcome, Run, run_job
from common.runtime.services import Services
from common.storage.base import NotFound, PreconditionFailed

log = get_logger("predict")

RECENT_HOURS = 48  # observations shown beside each forecast in the snapshot (dashboard)
ACCURACY_DAYS = 7


class PredictRequest(BaseModel):
    """Body of a POST to the predict function (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    as_of: UTCDateTime | None = None
    shard: int | None = Field(
        None, ge=0, description="Forecast only the locations of this shard (0 .. shards-1)."
    )
    shards: int | None = Field(
        None, ge=1, le=MAX_SHARDS, description="Shard count (default AIRCAST_PREDICT_SHARDS)."
    )


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


@dataclass(frozen=True)
class Prediction:
    """One shard's result, what is written and served: the model, the issue time, the run,
    the shard's active places, its forecast rows, the recent target values shown beside
    them and the locations skipped with their reasons."""

    loaded: Loaded
    spec: FeatureSpec
    as_of: dt.datetime
    run_id: str
    active: pd.DataFrame
    frame: pd.DataFrame
    obs: pd.DataFrame
    skipped: list[tuple[str, str]]
    shard: int = 0
    shards: int = 1


def run_predict(request: PredictRequest, services: Services) -> dict[str, Any]:
    """Forecast the active locations of the requested shards (all when none is named) with
    the production model and publish each shard's part of the snapshot."""
    todo, shards = shards_to_run(request.shard, request.shards, services.settings.predict_shards)
    return run_job("predict", request, services, lambda run: _predict(services, run, todo, shards))


def production_models(services: Services) -> tuple[dict[str, Loaded], dict[str, str]]:
    """Each target's production model, in AIRCAST_TARGETS order, and the targets without
    one with the reason (skipped, not a failure); a 409 when no target has a model."""
    settings = services.settings
    models: dict[str, Loaded] = {}
    missing: dict[str, Conflict] = {}
    for target in settings.forecast_targets:
        try:
            models[target] = Registry.of_target(services.store, settings, target).load_production()
        except Conflict as exc:
            missing[target] = exc
    if not models:
        raise next(iter(missing.values()))
    return models, {target: str(exc) for target, exc in missing.items()}


def _predict(services: Services, run: Run, todo: list[int], shards: int) -> Outcome:
    t = time.perf_counter()
    models, missing = production_models(services)  # 409 when no target has a model
    loaded = next(iter(models.values()))  # the first target's: the answer's top level
    spec = FeatureSpec(**loaded.metadata["spec"])
    run.answer["model_version"] = loaded.version
    if shards > 1:
        run.answer["shards"] = shards
    timings: dict[str, float] = {"model_load_s": round(time.perf_counter() - t, 4)}

    t0 = time.perf_counter()
    places = locations_mod.current(services.warehouse)
    active = places[places["active"].fillna(True).astype(bool)].reset_index(drop=True)
    if active.empty:
        raise Conflict("no active locations: run ingest first", field="as_of")
    timings["read_s"] = round(time.perf_counter() - t0, 4)

    counts = {"locations": 0, "forecasts": 0, "written": 0, "skipped": 0}
    skipped: list[tuple[str, str, str]] = []  # (target, location_id, reason)
    targets: dict[str, dict[str, Any]] = {}
    for target, model in models.items():  # each target: the shards as one target did alone
        mine = targets[target] = {
            "model_version": model.version,
            "counts": dict.fromkeys(counts, 0),
            "snapshot": {},  # shard -> what publish did
        }
        target_spec = FeatureSpec(**model.metadata["spec"])
        t1 = time.perf_counter()
        offsets = step_offsets(services, run, target, target_spec.horizon)
        if offsets is not None:  # served by every shard, published once for the api
            state = offsets.to_json()
            doc = {"issued_at": iso(run.as_of), "target": target, **state}
            key = intervals_key(target, services.settings.default_target)
            mine["intervals"] = {**state, "published": publish(services, doc, key)}
        _add(timings, "intervals_s", t1)
        for shard in todo:
            prediction, written = _forecast_shard(
                services, run, model, target_spec, active, shard, shards, timings, offsets
            )
            t2 = time.perf_counter()
            key = snapshot_key(shard, shards, target, services.settings.default_target)
            mine["snapshot"][str(shard)] = publish(
                services, build_snapshot(services, prediction), key
            )
            _add(timings, "snapshot_s", t2)
            frame = prediction.frame
            n = {
                "locations": int(frame["location_id"].nunique()) if len(frame) else 0,
                "forecasts": len(frame),
                "written": written,
                "skipped": len(prediction.skipped),
            }
            for k, v in n.items():
                counts[k] += v
                mine["counts"][k] += v
            skipped += [(target, i, r) for i, r in prediction.skipped]
    if shards == 1:  # one part: its outcome, as a single-target run has always answered
        for mine in targets.values():
            mine["snapshot"] = mine["snapshot"]["0"]
    answer: dict[str, Any] = {
        "issued_at": iso(run.as_of),
        "horizon": spec.horizon,
        "skipped": [{"location_id": i, "target": tg, "reason": r} for tg, i, r in skipped],
        "snapshot": targets[next(iter(models))]["snapshot"],
        "targets": {**targets, **{tg: {"skipped": reason} for tg, reason in missing.items()}},
        "timings": timings,
    }
    if shards > 1:
        answer["shards_run"] = todo
    status = "partial" if skipped or missing else "success"
    return Outcome(counts=counts, answer=answer, status=status)


def _forecast_shard(
    services: Services,
    run: Run,
    loaded: Loaded,
    spec: FeatureSpec,
    active: pd.DataFrame,
    shard: int,
    shards: int,
    timings: dict[str, float],
    offsets: Offsets | None = None,
) -> tuple[Prediction, int]:
    """Forecast one shard's locations in batches of AIRCAST_PREDICT_BATCH_LOCATIONS, each
    read -> features -> model -> write before the next, so memory follows the batch.

    A batch reads its locations' observations and its outside neighbours' target over the
    last REGION_HOURS alone (the regional features read nothing else of them) and forecasts
    its own: the rows are those of one unsharded run, bit for bit (tests/predict/
    test_shards.py).
    """
    ids_all = active["location_id"].astype(str)
    mine = active[ids_all.map(lambda i: shard_of(i, shards)) == shard] if shards > 1 else active
    ids = mine["location_id"].astype(str).tolist()
    size = services.settings.predict_batch_locations
    whole = shards == 1 and len(ids) <= size  # one batch of everything: no id filter needed
    done = _done(services, loaded.version, spec.target, run.as_of, None if whole else ids)
    frames, recent, skipped, written = [], [], [], 0
    start = run.as_of - dt.timedelta(hours=RECENT_HOURS - 1)
    for b in range(0, len(ids), size):
        batch = ids[b : b + size]
        t0 = time.perf_counter()
        places = active if whole else active[ids_all.isin(set(batch))]
        obs = read_recent(services, spec, run.as_of, None if whole else batch)
        neighbours = None
        if not whole:  # their target only: the regional features read nothing else
            near = neighbours_of(batch, active)
            nb_obs = (
                read_recent(services, spec, run.as_of, near, [spec.target], REGION_HOURS)
                if near
                else pd.DataFrame(columns=["location_id", "ts", spec.target])
            )
            neighbours = (active[ids_all.isin(set(near))], nb_obs)
        weather = (
            read_weather_forecasts(services, run.as_of, spec.horizon, None if whole else batch)
            if spec.future_weather
            else None
        )
        _add(timings, "read_s", t0)
        step: dict[str, float] = {}
        frame, sk = forecast_frame(
            loaded, obs, run.as_of, places, weather, step, neighbours, offsets
        )
        for k, v in step.items():
            timings[k] = round(timings.get(k, 0) + v, 4)
        t1 = time.perf_counter()
        written += _write_new(services, frame, done, run, loaded.version)
        checkpoint("predict:forecasts-written")
        _add(timings, "write_s", t1)
        ts = pd.to_datetime(obs["ts"], utc=True)
        keep = ts >= pd.Timestamp(start)
        recent.append(obs.loc[keep, ["location_id", "ts", spec.target]])
        frames.append(frame)
        skipped += sk
    frame = pd.concat(frames, ignore_index=True) if frames else _empty_frame()
    obs = pd.concat(recent, ignore_index=True) if recent else pd.DataFrame()
    prediction = Prediction(
        loaded, spec, run.as_of, run.run_id, mine, frame, obs, skipped, shard, shards
    )
    return prediction, written


def _add(timings: dict[str, float], key: str, since: float) -> None:
    timings[key] = round(timings.get(key, 0) + time.perf_counter() - since, 4)


def _empty_frame() -> pd.DataFrame:
    cols = ["location_id", "target", "issued_at", "target_ts", "horizon_h"]
    return pd.DataFrame(columns=[*cols, "yhat", "yhat_lower", "yhat_upper"])


def _done(
    services: Services, version: str, target: str, as_of: dt.datetime, ids: list[str] | None
) -> set[str]:
    """Locations already forecast for (version, issued_at, target): a re-run skips them."""
    if ids is not None and not ids:
        return set()
    params: dict[str, Any] = {"as_of": as_of, "version": version, "target": target}
    done = services.warehouse.query(
        "SELECT DISTINCT location_id FROM forecasts "
        "WHERE issued_at = @as_of AND model_version = @version AND target = @target"
        + _ids_clause(params, ids),
        params,
    )
    return set(done["location_id"].astype(str))


def _write_new(
    services: Services, frame: pd.DataFrame, done: set[str], run: Run, version: str
) -> int:
    """Append the batch's locations not yet forecast for (version, issued_at, target)."""
    new = frame[~frame["location_id"].isin(done)] if done else frame
    if new.empty:
        return 0
    rows = new.assign(run_id=run.run_id, model_version=version, created_at=dt.datetime.now(UTC))
    return services.warehouse.append("forecasts", rows)


class RawJSON(str):
    """JSON text already encoded, placed as is by `encode_snapshot`."""


def _rows_json(matrix: np.ndarray, digits: int) -> list[str]:
    """Each row of a float matrix as a JSON array (NaN -> null), by pandas' C encoder:
    json.dumps of the 1.2 M numbers of a 10,000-location snapshot costs ~0.5 s, this ~0.1."""
    if matrix.size == 0:
        return ["[]"] * len(matrix)
    text = pd.DataFrame(matrix).to_json(orient="values", double_precision=digits)
    return ["[" + row + "]" for row in text[2:-2].split("],[")]


def build_snapshot(services: Services, prediction: Prediction) -> dict[str, Any]:
    """What the api serves (the JSON of `common.forecasting.snapshot.Snapshot`): per location the
    forecast arrays, the recent values and the recent accuracy.

    Built column-wise, the large maps as pre-encoded JSON text: at 10,000 locations a
    pydantic object per location costs seconds; the api validates the document on load.
    """
    p = prediction
    spec, as_of, frame, obs, active = p.spec, p.as_of, p.frame, p.obs, p.active
    H = spec.horizon
    issued, version = json.dumps(iso(as_of)), json.dumps(p.loaded.version)
    ids: list[str] = []
    forecasts = RawJSON("{}")
    if len(frame):
        ordered = frame.sort_values(["location_id", "horizon_h"])
        ids = [str(i) for i in ordered["location_id"].to_numpy()[::H]]
        cols = {
            c: ordered[c].to_numpy(float).reshape(-1, H)
            for c in ("yhat", "yhat_lower", "yhat_upper")
        }
        if any(np.isnan(m).any() for m in cols.values()):
            raise ValueError("the model produced NaN forecasts; nothing published")
        enc = {c: _rows_json(m, 3) for c, m in cols.items()}
        forecasts = RawJSON(
            "{"
            + ",".join(
                f'{json.dumps(loc)}:{{"issued_at":{issued},"model_version":{version},'
                f'"yhat":{enc["yhat"][i]},"yhat_lower":{enc["yhat_lower"][i]},'
                f'"yhat_upper":{enc["yhat_upper"][i]}}}'
                for i, loc in enumerate(ids)
            )
            + "}"
        )
    start = as_of - dt.timedelta(hours=RECENT_HOURS - 1)
    observations = RawJSON("{}")
    if not obs.empty and ids:
        ts = pd.to_datetime(obs["ts"], utc=True)
        recent = obs[(ts >= pd.Timestamp(start)) & obs["location_id"].isin(ids)]
        wide = recent.pivot_table(
            index="location_id", columns="ts", values=spec.target, aggfunc="last"
        )
        wide.columns = pd.to_datetime(wide.columns, utc=True)
        wide = wide.reindex(columns=pd.date_range(start, as_of, freq="h"))
        first = json.dumps(iso(start))
        rows = _rows_json(wide.to_numpy(float), 1)
        observations = RawJSON(
            "{"
            + ",".join(
                f'{json.dumps(str(loc))}:{{"start":{first},"values":{row}}}'
                for loc, row in zip(wide.index, rows, strict=True)
            )
            + "}"
        )
    cols_info = [c for c in LocationInfo.model_fields if c in active.columns]
    info = active[cols_info].astype(object).where(active[cols_info].notna(), None)
    accuracy = recent_accuracy(services, spec.target, as_of, None if p.shards == 1 else ids)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(dt.datetime.now(UTC)),
        "issued_at": iso(as_of),
        "run_id": p.run_id,
        "model_name": model_name_for(
            services.settings.model_name, spec.target, services.settings.default_target
        ),
        "model_version": p.loaded.version,
        "target": spec.target,
        "unit": VARIABLES[spec.target].unit,
        "horizon": H,
        "shard": p.shard,
        "shards": p.shards,
        "locations": info.to_dict("records"),
        "forecasts": forecasts,
        "observations": observations,
        "accuracy": None if accuracy is None else accuracy.model_dump(mode="json"),
        "skipped": [{"location_id": i, "reason": r} for i, r in p.skipped],
        "hindcast": recent_hindcast(services, spec.target, as_of, start, ids, min(24, H)),
    }


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


def encode_snapshot(snapshot: dict[str, Any]) -> bytes:
    """The snapshot as compact JSON; `RawJSON` values are already encoded."""
    parts = []
    for key, value in snapshot.items():
        text = (
            value
            if isinstance(value, RawJSON)
            else json.dumps(value, separators=(",", ":"), allow_nan=False)
        )
        parts.append(f"{json.dumps(key)}:{text}")
    return ("{" + ",".join(parts) + "}").encode()


def recent_accuracy(
    services: Services, target: str, as_of: dt.datetime, ids: list[str] | None = None
) -> Accuracy | None:
    """Accuracy of forecasts whose target hour fell in the last ACCURACY_DAYS (all versions),
    over the locations `ids` when given (one shard's)."""
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
        "AVG(ABS(persisted - actual)) AS persistence_mae "
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
            )
            for r in by_h.itertuples()
        ],
        by_location={str(r.location_id): round(float(r.mae), 3) for r in by_loc.itertuples()},
    )


def publish(
    services: Services, snapshot: dict[str, Any], key: str = SNAPSHOT_KEY, attempts: int = 3
) -> dict[str, Any]:
    """Write the snapshot (or one shard's part, or the interval offsets) at `key` unless a
    newer issue time is already served there.

    Compare-and-swap on the generation read, so two predict runs racing cannot let the
    older issue time land last; the loser re-reads and decides again.
    """
    store = services.store
    body = encode_snapshot(snapshot)
    issued = pd.Timestamp(snapshot["issued_at"])
    for _ in range(attempts):
        try:
            data, generation = store.get_with_generation(key)
            current = pd.Timestamp(issued_at_of(data))
        except NotFound:
            current, generation = None, 0
        except (ValueError, KeyError, TypeError):  # unreadable: replace it
            current, generation = None, store.generation(key)
        if current is not None and current > issued:
            return {"written": False, "reason": f"a newer snapshot ({iso(current)}) is served"}
        try:
            store.put_if_generation(key, body, generation, "application/json")
        except PreconditionFailed:
            continue
        return {"written": True, "key": key, "bytes": len(body)}
    raise Conflict("the serving snapshot kept changing under this run; retry", field="snapshot")
