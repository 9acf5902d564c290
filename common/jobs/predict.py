"""The predict job: production model x every active location at as_of -> forecasts + snapshot.

Reads only what was known at as_of: observations with ts in (as_of - HISTORY_HOURS, as_of]
and, when the model uses weather at the target hour, the newest weather forecast issued at
or before as_of for each target hour. Features come from `common.features`, the code that
built the training rows.

Idempotent: the rows of one (model_version, issued_at, target) are written once per
location; a re-run (or a retry after a failure part-way through the append) writes only
the locations still missing and answers the same forecasts. The serving snapshot moves
forward only: predicting an older as_of (a backfill) never replaces a newer snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from common import locations as locations_mod
from common.errors import Conflict
from common.features import HISTORY_HOURS, FeatureSpec, grid_columns
from common.forecast import forecast_frame
from common.registry import Loaded, Registry
from common.runs import track_run
from common.schema import VARIABLES, WEATHER
from common.services import Services, get_services
from common.snapshot import SCHEMA_VERSION, SNAPSHOT_KEY, Accuracy, HorizonAccuracy, LocationInfo
from common.storage.base import NotFound, PreconditionFailed
from common.timeutil import UTC, UTCDateTime, iso, resolve_as_of

RECENT_HOURS = 48  # observations shown beside each forecast in the snapshot (dashboard)
ACCURACY_DAYS = 7


class PredictRequest(BaseModel):
    """Body of a POST to the predict function (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    as_of: UTCDateTime | None = None


def read_recent(services: Services, spec: FeatureSpec, as_of: dt.datetime) -> pd.DataFrame:
    """Observations the features may use at as_of: the last HISTORY_HOURS, nothing later."""
    cols = ", ".join(grid_columns(spec))
    return services.warehouse.query(
        f"SELECT location_id, ts, {cols} FROM observations WHERE ts > @start AND ts <= @as_of",
        {"start": as_of - dt.timedelta(hours=HISTORY_HOURS), "as_of": as_of},
    )


def read_weather_forecasts(services: Services, as_of: dt.datetime, horizon: int) -> pd.DataFrame:
    """For each (location, target hour), the newest weather forecast issued at or before as_of."""
    cols = ", ".join(WEATHER)
    return services.warehouse.query(
        f"SELECT location_id, ts, {cols} FROM weather_forecasts "
        "WHERE issued_at <= @as_of AND ts > @as_of AND ts <= @end "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY location_id, ts "
        "ORDER BY issued_at DESC, ingested_at DESC) = 1",
        {"as_of": as_of, "end": as_of + dt.timedelta(hours=horizon)},
    )


def run_predict(request: PredictRequest, services: Services | None = None) -> dict[str, Any]:
    services = services or get_services()
    s = services.settings
    as_of = resolve_as_of(request.as_of)
    params = request.model_dump(mode="json", exclude_none=True)
    with track_run(services.warehouse, "predict", as_of, params) as run:
        loaded = Registry(services.store, s.model_name).load_production()  # 409 without one
        spec = FeatureSpec(**loaded.metadata["spec"])
        run.answer["model_version"] = loaded.version
        timings: dict[str, float] = {}

        t0 = time.perf_counter()
        places = locations_mod.current(services.warehouse)
        active = places[places["active"].fillna(True).astype(bool)]
        if active.empty:
            raise Conflict("no active locations: run ingest first", field="as_of")
        obs = read_recent(services, spec, as_of)
        weather = (
            read_weather_forecasts(services, as_of, spec.horizon) if spec.future_weather else None
        )
        timings["read_s"] = round(time.perf_counter() - t0, 4)

        frame, skipped = forecast_frame(loaded, obs, as_of, active, weather, timings)
        t1 = time.perf_counter()
        written = _write_new(services, frame, loaded.version, spec.target, as_of, run.run_id)
        timings["write_s"] = round(time.perf_counter() - t1, 4)

        t2 = time.perf_counter()
        snapshot = build_snapshot(
            services, loaded, spec, as_of, run.run_id, active, frame, obs, skipped
        )
        published = publish(services, snapshot)
        timings["snapshot_s"] = round(time.perf_counter() - t2, 4)

        n_loc = int(frame["location_id"].nunique()) if len(frame) else 0
        run.counts = {
            "locations": n_loc,
            "forecasts": len(frame),
            "written": written,
            "skipped": len(skipped),
        }
        run.answer.update(
            {
                "issued_at": iso(as_of),
                "horizon": spec.horizon,
                "skipped": [{"location_id": i, "reason": r} for i, r in skipped],
                "snapshot": published,
                "timings": timings,
            }
        )
        if n_loc == 0:
            run.status = "partial" if skipped else "success"
        elif skipped:
            run.status = "partial"
    return run.result()


def _write_new(
    services: Services,
    frame: pd.DataFrame,
    version: str,
    target: str,
    as_of: dt.datetime,
    run_id: str,
) -> int:
    """Append the locations not yet forecast for (version, issued_at, target)."""
    if frame.empty:
        return 0
    done = services.warehouse.query(
        "SELECT DISTINCT location_id FROM forecasts "
        "WHERE issued_at = @as_of AND model_version = @version AND target = @target",
        {"as_of": as_of, "version": version, "target": target},
    )
    new = frame[~frame["location_id"].isin(set(done["location_id"].astype(str)))]
    if new.empty:
        return 0
    rows = new.assign(run_id=run_id, model_version=version, created_at=dt.datetime.now(UTC))
    return services.warehouse.append("forecasts", rows)


def build_snapshot(
    services: Services,
    loaded: Loaded,
    spec: FeatureSpec,
    as_of: dt.datetime,
    run_id: str,
    active: pd.DataFrame,
    frame: pd.DataFrame,
    obs: pd.DataFrame,
    skipped: list[tuple[str, str]],
) -> dict[str, Any]:
    """What the api serves (the JSON of `common.snapshot.Snapshot`): per location the
    forecast arrays, the recent values and the recent accuracy.

    Built column-wise as plain JSON values: at 10,000 locations a pydantic object per
    location costs seconds; the api validates the document when it loads it.
    """
    H = spec.horizon
    forecasts: dict[str, Any] = {}
    if len(frame):
        ordered = frame.sort_values(["location_id", "horizon_h"])
        ids = ordered["location_id"].to_numpy()[::H]
        arrays = {
            c: np.round(ordered[c].to_numpy(float), 3).reshape(-1, H).tolist()
            for c in ("yhat", "yhat_lower", "yhat_upper")
        }
        issued, version = iso(as_of), loaded.version
        for i, loc in enumerate(ids):
            forecasts[str(loc)] = {
                "issued_at": issued,
                "model_version": version,
                "yhat": arrays["yhat"][i],
                "yhat_lower": arrays["yhat_lower"][i],
                "yhat_upper": arrays["yhat_upper"][i],
            }
    start = as_of - dt.timedelta(hours=RECENT_HOURS - 1)
    observations: dict[str, Any] = {}
    if not obs.empty and forecasts:
        ts = pd.to_datetime(obs["ts"], utc=True)
        recent = obs[(ts >= pd.Timestamp(start)) & obs["location_id"].isin(forecasts)]
        wide = recent.pivot_table(
            index="location_id", columns="ts", values=spec.target, aggfunc="last"
        )
        wide.columns = pd.to_datetime(wide.columns, utc=True)
        wide = wide.reindex(columns=pd.date_range(start, as_of, freq="h")).round(1)
        values = wide.astype(object).where(wide.notna(), None).to_numpy().tolist()
        first = iso(start)
        for loc, row in zip(wide.index, values, strict=True):
            observations[str(loc)] = {"start": first, "values": row}
    cols = [c for c in LocationInfo.model_fields if c in active.columns]
    info = active[cols].astype(object).where(active[cols].notna(), None)
    accuracy = recent_accuracy(services, spec.target, as_of)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(dt.datetime.now(UTC)),
        "issued_at": iso(as_of),
        "run_id": run_id,
        "model_name": services.settings.model_name,
        "model_version": loaded.version,
        "target": spec.target,
        "unit": VARIABLES[spec.target].unit,
        "horizon": H,
        "locations": info.to_dict("records"),
        "forecasts": forecasts,
        "observations": observations,
        "accuracy": None if accuracy is None else accuracy.model_dump(mode="json"),
        "skipped": [{"location_id": i, "reason": r} for i, r in skipped],
    }


def recent_accuracy(services: Services, target: str, as_of: dt.datetime) -> Accuracy | None:
    """Accuracy of forecasts whose target hour fell in the last ACCURACY_DAYS (all versions)."""
    start = as_of - dt.timedelta(days=ACCURACY_DAYS)
    where = "WHERE target = @target AND target_ts > @start AND target_ts <= @as_of"
    p = {"target": target, "start": start, "as_of": as_of}
    wh = services.warehouse
    by_h = wh.query(
        "SELECT horizon_h, COUNT(*) AS n, AVG(abs_error) AS mae, "
        "SQRT(AVG(error * error)) AS rmse, AVG(CAST(covered AS FLOAT64)) AS coverage "
        f"FROM forecast_accuracy {where} GROUP BY horizon_h ORDER BY horizon_h",
        p,
    )
    if by_h.empty:
        return None
    by_loc = wh.query(
        "SELECT location_id, AVG(abs_error) AS mae FROM forecast_accuracy "
        f"{where} GROUP BY location_id ORDER BY location_id",
        p,
    )
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
            )
            for r in by_h.itertuples()
        ],
        by_location={str(r.location_id): round(float(r.mae), 3) for r in by_loc.itertuples()},
    )


def publish(services: Services, snapshot: dict[str, Any], attempts: int = 3) -> dict[str, Any]:
    """Write serving/latest.json unless a newer issue time is already served.

    Compare-and-swap on the generation read, so two predict runs racing cannot let the
    older issue time land last; the loser re-reads and decides again.
    """
    store = services.store
    body = json.dumps(snapshot, separators=(",", ":"), allow_nan=False).encode()
    issued = pd.Timestamp(snapshot["issued_at"])
    for _ in range(attempts):
        try:
            data, generation = store.get_with_generation(SNAPSHOT_KEY)
            current = pd.Timestamp(json.loads(data)["issued_at"])
        except NotFound:
            current, generation = None, 0
        except (ValueError, KeyError, TypeError):  # unreadable: replace it
            current, generation = None, store.generation(SNAPSHOT_KEY)
        if current is not None and current > issued:
            return {"written": False, "reason": f"a newer snapshot ({iso(current)}) is served"}
        try:
            store.put_if_generation(SNAPSHOT_KEY, body, generation, "application/json")
        except PreconditionFailed:
            continue
        return {"written": True, "key": SNAPSHOT_KEY, "bytes": len(body)}
    raise Conflict("the serving snapshot kept changing under this run; retry", field="snapshot")
