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

Here: the orchestration (targets x shards x batches) and the forecast rows' write. The
warehouse reads are in `common.predict.reads`, the snapshot document and its encoding in
`common.predict.snapshot`, its forward-only publishing in `common.predict.publish`.

Idempotent: the rows of one (model_version, issued_at, target) are written once per
location; a re-run (or a retry after a failure part-way through the append) writes only
the locations still missing and answers the same forecasts. The serving snapshot moves
forward only: predicting an older as_of (a backfill) never replaces a newer snapshot.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from common.core.errors import Conflict
from common.core.faults import checkpoint
from common.core.logs import get_logger
from common.core.sharding import MAX_SHARDS, shard_of, shards_to_run
from common.core.timeutil import UTC, UTCDateTime, iso
from common.forecasting.adaptation import Offsets
from common.forecasting.as_issued import read_cams
from common.forecasting.combination import Weights
from common.forecasting.features import FeatureSpec
from common.forecasting.forecast import forecast_frame
from common.forecasting.neighbours import REGION_HOURS, neighbours_of
from common.forecasting.place_weights import PlaceWeights
from common.forecasting.registry import Loaded, Registry
from common.forecasting.snapshot import intervals_key, snapshot_key
from common.predict.answer import PredictAnswer
from common.predict.combination import step_place_weights, step_weights
from common.predict.intervals import step_offsets
from common.predict.publish import publish
from common.predict.reads import already_forecast, read_recent, read_weather_forecasts
from common.predict.snapshot import RECENT_HOURS, Prediction, build_snapshot
from common.predict.timings import Timings
from common.runtime import locations as locations_mod
from common.runtime.runs import Outcome, Run, run_job
from common.runtime.services import Services

log = get_logger("predict")

COUNTS = ("locations", "forecasts", "written", "skipped")


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


def run_predict(request: PredictRequest, services: Services) -> dict[str, Any]:
    """Forecast the active locations of the requested shards (all when none is named) with
    the production model and publish each shard's part of the snapshot."""
    todo, shards = shards_to_run(request.shard, request.shards, services.settings.predict_shards)
    return run_job(
        "predict",
        request,
        services,
        lambda run: _predict(services, run, todo, shards),
        answer=PredictAnswer,
    )


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
    timings = Timings()
    with timings.stage("model_load_s"):
        models, missing = production_models(services)  # 409 when no target has a model
    loaded = next(iter(models.values()))  # the first target's: the answer's top level
    spec = loaded.metadata.feature_spec()
    run.answer["model_version"] = loaded.version
    if shards > 1:
        run.answer["shards"] = shards
    with timings.stage("read_s"):
        active = _active_places(services)

    counts = dict.fromkeys(COUNTS, 0)
    skipped: list[tuple[str, str, str]] = []  # (target, location_id, reason)
    targets: dict[str, dict[str, Any]] = {}
    for target, model in models.items():  # each target: the shards as one target did alone
        mine, target_skipped, target_timings = _predict_target(
            services, run, target, model, active, todo, shards
        )
        targets[target] = mine
        timings.merge(target_timings)
        for k in COUNTS:
            counts[k] += mine["counts"][k]
        skipped += [(target, i, r) for i, r in target_skipped]
    answer: dict[str, Any] = {
        "issued_at": iso(run.as_of),
        "horizon": spec.horizon,
        "skipped": [{"location_id": i, "target": tg, "reason": r} for tg, i, r in skipped],
        "targets": {**targets, **{tg: {"skipped": reason} for tg, reason in missing.items()}},
        "timings": timings.seconds,
    }
    if shards > 1:
        answer["shards_run"] = todo
    status = "partial" if skipped or missing else "success"
    return Outcome(counts=counts, answer=answer, status=status)


def _active_places(services: Services) -> pd.DataFrame:
    """The active locations of the registry; a 409 when there are none (ingest has not run)."""
    places = locations_mod.current(services.warehouse)
    active = places[places["active"].fillna(True).astype(bool)].reset_index(drop=True)
    if active.empty:
        raise Conflict("no active locations: run ingest first", field="as_of")
    return active


def _predict_target(
    services: Services,
    run: Run,
    target: str,
    model: Loaded,
    active: pd.DataFrame,
    todo: list[int],
    shards: int,
) -> tuple[dict[str, Any], list[tuple[str, str]], Timings]:
    """One target: its interval offsets stepped (and published once for the api), then each
    shard forecast and its snapshot part published. Its part of the answer, the locations
    skipped with their reasons, and the seconds per stage."""
    timings = Timings()
    mine: dict[str, Any] = {
        "model_version": model.version,
        "counts": dict.fromkeys(COUNTS, 0),
        "snapshot": {},  # shard -> what publish did
    }
    spec = model.metadata.feature_spec()
    with timings.stage("intervals_s"):
        offsets = step_offsets(services, run, target, spec.horizon)
        weights = step_weights(services, run, target, model)
        # Served by every shard, published once for the api's online predictions.
        state = offsets.to_json() if offsets is not None else {}
        doc = {
            "issued_at": iso(run.as_of),
            "target": target,
            **state,
            "model_version": model.version,
            "combination": weights.to_json(),
        }
        key = intervals_key(target, services.settings.default_target)
        published = publish(services, doc, key)
        if offsets is not None:
            mine["intervals"] = {**state, "published": published}
        served = weights.to_json()
        mine["combination"] = {k: served[k] for k in ("experts", "weights", "verified_through")}
    skipped: list[tuple[str, str]] = []
    for shard in todo:
        prediction, written, shard_timings = _forecast_shard(
            services, run, model, spec, active, shard, shards, offsets, weights
        )
        timings.merge(shard_timings)
        with timings.stage("snapshot_s"):
            key = snapshot_key(shard, shards, target, services.settings.default_target)
            mine["snapshot"][str(shard)] = publish(
                services, build_snapshot(services, prediction), key
            )
        frame = prediction.frame
        mine["counts"]["locations"] += int(frame["location_id"].nunique()) if len(frame) else 0
        mine["counts"]["forecasts"] += len(frame)
        mine["counts"]["written"] += written
        mine["counts"]["skipped"] += len(prediction.skipped)
        skipped += prediction.skipped
    return mine, skipped, timings


def _forecast_shard(
    services: Services,
    run: Run,
    loaded: Loaded,
    spec: FeatureSpec,
    active: pd.DataFrame,
    shard: int,
    shards: int,
    offsets: Offsets | None = None,
    weights: Weights | None = None,
) -> tuple[Prediction, int, Timings]:
    """Forecast one shard's locations in batches of AIRCAST_PREDICT_BATCH_LOCATIONS, each
    read -> features -> model before the next, so memory follows the batch; the shard's
    rows are then written as one append (one BigQuery load job per shard and target, which
    is what bounds the shards: docs/scale.md).

    A batch reads its locations' observations and its outside neighbours' target over the
    last REGION_HOURS alone (the regional features read nothing else of them) and forecasts
    its own: the rows are those of one unsharded run, bit for bit (tests/predict/
    test_shards.py).
    """
    timings = Timings()
    ids_all = active["location_id"].astype(str)
    mine = active[ids_all.map(lambda i: shard_of(i, shards)) == shard] if shards > 1 else active
    ids = mine["location_id"].astype(str).tolist()
    size = services.settings.predict_batch_locations
    whole = shards == 1 and len(ids) <= size  # one batch of everything: no id filter needed
    done = already_forecast(
        services, loaded.version, spec.target, run.as_of, None if whole else ids
    )
    place_weights = None
    if weights is not None:  # each place's own weights, stepped for this shard's places
        with timings.stage("intervals_s"):
            place_weights = step_place_weights(
                services, run, spec.target, loaded, weights,
                None if shards == 1 else ids, f"{shard}/{shards}",
            )  # fmt: skip
    frames, recent, skipped = _forecast_batches(
        services, run, loaded, spec, active, None if whole else ids, timings, offsets,
        weights, place_weights,
    )  # fmt: skip
    frame = pd.concat(frames, ignore_index=True) if frames else _empty_frame()
    with timings.stage("write_s"):
        written = _write_new(services, frame, done, run, loaded.version)
        checkpoint("predict:forecasts-written")
    obs = pd.concat(recent, ignore_index=True) if recent else pd.DataFrame()
    prediction = Prediction(
        loaded, spec, run.as_of, run.run_id, mine, frame, obs, skipped, shard, shards,
        place_weights,
    )  # fmt: skip
    return prediction, written, timings


def _forecast_batches(
    services: Services,
    run: Run,
    loaded: Loaded,
    spec: FeatureSpec,
    active: pd.DataFrame,
    ids: list[str] | None,
    timings: Timings,
    offsets: Offsets | None,
    weights: Weights | None,
    place_weights: PlaceWeights | None,
) -> tuple[list[pd.DataFrame], list[pd.DataFrame], list[tuple[str, str]]]:
    """The forecasts, recent observations and skipped places of `ids` (None: every active
    place in one batch), batch by batch: each batch read, featurised and forecast before
    the next, so memory follows the batch."""
    frames: list[pd.DataFrame] = []
    recent: list[pd.DataFrame] = []
    skipped: list[tuple[str, str]] = []
    size = services.settings.predict_batch_locations
    start = run.as_of - dt.timedelta(hours=RECENT_HOURS - 1)
    batches: list[list[str] | None] = [None]
    if ids is not None:
        batches = [ids[b : b + size] for b in range(0, len(ids), size)]
    for batch in batches:
        with timings.stage("read_s"):
            places, obs, neighbours, weather = _read_batch(services, spec, run.as_of, active, batch)
        step: dict[str, float] = {}
        cams = (  # the CAMS input, when the model reads it (the one CAMS read)
            read_cams(services.warehouse, run.as_of, spec.horizon, [spec.target], batch)
            if spec.cams
            else None
        )
        frame, sk = forecast_frame(
            loaded, obs, run.as_of, places, weather, step, neighbours, offsets, cams, weights,
            place_weights,
        )  # fmt: skip
        timings.merge(step)
        ts = pd.to_datetime(obs["ts"], utc=True)
        keep = ts >= pd.Timestamp(start)
        recent.append(obs.loc[keep, ["location_id", "ts", spec.target]])
        frames.append(frame)
        skipped += sk
    return frames, recent, skipped


def _read_batch(
    services: Services,
    spec: FeatureSpec,
    as_of: dt.datetime,
    active: pd.DataFrame,
    batch: list[str] | None,
) -> tuple[
    pd.DataFrame, pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame] | None, pd.DataFrame | None
]:
    """What one batch's features read: its places and observations, its outside neighbours'
    places and target (None for the whole network in one batch: they are all inside) and
    the weather forecasts when the model uses them. `batch` None means every location."""
    ids_all = active["location_id"].astype(str)
    places = active if batch is None else active[ids_all.isin(set(batch))]
    obs = read_recent(services, spec, as_of, batch)
    neighbours = None
    if batch is not None:  # their target only: the regional features read nothing else
        near = neighbours_of(batch, active)
        nb_obs = (
            read_recent(services, spec, as_of, near, [spec.target], REGION_HOURS)
            if near
            else pd.DataFrame(columns=["location_id", "ts", spec.target])
        )
        neighbours = (active[ids_all.isin(set(near))], nb_obs)
    weather = (
        read_weather_forecasts(services, as_of, spec.horizon, batch)
        if spec.future_weather
        else None
    )
    return places, obs, neighbours, weather


def _empty_frame() -> pd.DataFrame:
    cols = ["location_id", "target", "issued_at", "target_ts", "horizon_h"]
    return pd.DataFrame(columns=[*cols, "yhat", "yhat_lower", "yhat_upper", "yhat_model"])


def _write_new(
    services: Services, frame: pd.DataFrame, done: set[str], run: Run, version: str
) -> int:
    """Append the shard's locations not yet forecast for (version, issued_at, target)."""
    new = frame[~frame["location_id"].isin(done)] if done else frame
    if new.empty:
        return 0
    rows = new.assign(run_id=run.run_id, model_version=version, created_at=dt.datetime.now(UTC))
    # Keyed by issue time: a twin delivery of this predict (at-least-once) writes nothing.
    return services.warehouse.append("forecasts", rows, key=f"predict|{iso(run.as_of)}")
