"""The train job: fit on the training window, evaluate, write a version, gate, promote.

Data: observations with ts in (as_of - AIRCAST_TRAIN_WINDOW_DAYS, as_of], nothing later.
The last AIRCAST_TRAIN_HOLDOUT_DAYS of issue times (whose targets are <= as_of) are held
out; the model is fitted on what comes before and is the one that is evaluated, saved and
possibly promoted. Earlier rolling-origin folds (each refit on a quarter of the row budget)
show how stable the skill is; they inform, the gate decides on the holdout:

- the candidate's MAE must beat seasonal naive by AIRCAST_GATE_MARGIN, and
- must not be worse than the production model's MAE on the same holdout rows by more
  than AIRCAST_GATE_TOLERANCE.

The version id is derived from as_of, a fingerprint of the training data and the recipe
(features, row budget, holdout), so re-running with the same inputs finds the version
already written and decides again without refitting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

import common
from common.core.errors import Conflict
from common.core.timeutil import UTCDateTime, iso, resolve_as_of
from common.forecasting.evaluation import ratio
from common.forecasting.features import HISTORY_HOURS, FeatureSpec, grid_columns
from common.forecasting.registry import Registry
from common.forecasting.training import fit_model, holdout_metrics
from common.runtime import locations as locations_mod
from common.runtime.runs import track_run
from common.runtime.services import Services, get_services

HOLDOUT_ROWS = 250_000  # fixed, so candidate and production are scored on the same rows
WEATHER_NOTE = (
    "Training rows use the observed weather at the target hour as a stand-in for a weather "
    "forecast; predict uses the newest weather forecast issued at or before the issue time."
)


class TrainRequest(BaseModel):
    """Body of a POST to the train function (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    as_of: UTCDateTime | None = None
    window_days: int | None = Field(None, ge=7, le=3660)
    max_rows: int | None = Field(None, ge=1_000, le=20_000_000)


def read_observations(
    services: Services, spec: FeatureSpec, start: dt.datetime, as_of: dt.datetime
) -> pd.DataFrame:
    cols = ", ".join(grid_columns(spec))
    return services.warehouse.query(
        f"SELECT location_id, ts, {cols} FROM observations "
        "WHERE ts > @start AND ts <= @as_of ORDER BY ts, location_id",
        {"start": start, "as_of": as_of},
    )


def fingerprint(obs: pd.DataFrame) -> str:
    """sha256 over the training rows (order-independent of how the warehouse returned them)."""
    frame = obs.sort_values(["location_id", "ts"]).reset_index(drop=True)
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def run_train(request: TrainRequest, services: Services | None = None) -> dict[str, Any]:
    services = services or get_services()
    s = services.settings
    as_of = resolve_as_of(request.as_of)
    params = request.model_dump(mode="json", exclude_none=True)
    with track_run(services.warehouse, "train", as_of, params) as run:
        spec = FeatureSpec(s.target, s.horizon, s.future_weather)
        window = dt.timedelta(days=request.window_days or s.train_window_days)
        max_rows = request.max_rows or s.train_max_rows
        obs = read_observations(services, spec, as_of - window, as_of)
        if obs.empty:
            raise Conflict("no observations in the training window: run ingest first", "as_of")
        places = locations_mod.current(services.warehouse)
        registry = Registry(services.store, s.model_name)
        pointer, generation = registry.production()
        fp = fingerprint(obs)
        recipe = json.dumps([fp, spec.to_dict(), max_rows, s.train_holdout_days], sort_keys=True)
        version = f"{as_of:%Y%m%dT%H%MZ}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"
        run.answer["version"] = version

        oldest = pd.Timestamp(obs["ts"].min()).to_pydatetime()
        first = oldest + dt.timedelta(hours=HISTORY_HOURS)
        H = spec.horizon
        holdout_end = as_of - dt.timedelta(hours=H)
        holdout_start = holdout_end - dt.timedelta(days=s.train_holdout_days)
        if holdout_start - first < dt.timedelta(hours=20 * H):
            raise Conflict(
                f"not enough history to train: observations from {iso(oldest)} "
                f"to {iso(as_of)}; need about {s.train_holdout_days} holdout days plus "
                f"{20 * H // 24 + HISTORY_HOURS // 24} days before them",
                "as_of",
            )
        threads = {"nthread": s.train_threads}

        if registry.exists(version):
            model, meta = registry.load(version)
            metrics = meta["metrics"]["holdout"]
            rows, folds = meta["rows"], meta["backtest"]
            report = None
        else:
            fit = fit_model(obs, spec, places, first, holdout_start, max_rows, params=threads)
            model = fit.model
            metrics, keys, q = holdout_metrics(
                model, obs, spec, places, holdout_start, holdout_end, HOLDOUT_ROWS
            )
            rows = {**fit.rows, "holdout": metrics["rows"]}
            folds = backtest(obs, spec, places, first, holdout_start, s, max_rows, threads)
            meta = None
            report = _report(keys, q, metrics, version)

        decision = gate(metrics, s.gate_margin)
        prod_mae = None
        if pointer is not None and pointer["version"] != version:
            prod_mae, note = production_mae(
                registry,
                pointer["version"],
                obs,
                spec,
                places,
                holdout_start,
                holdout_end,
                HOLDOUT_ROWS,
                metrics,
            )
            if prod_mae is not None and metrics["model"]["mae"] > prod_mae * (1 + s.gate_tolerance):
                decision["promote"] = False
                decision["reasons"].append(
                    f"MAE {metrics['model']['mae']:.3f} is worse than production "
                    f"{pointer['version']} ({prod_mae:.3f}) by more than "
                    f"{s.gate_tolerance:.0%} on the same holdout"
                )
            elif prod_mae is not None:
                decision["reasons"].append(
                    f"MAE {metrics['model']['mae']:.3f} vs production {prod_mae:.3f}: within "
                    f"{s.gate_tolerance:.0%} tolerance or better"
                )
            else:
                decision["reasons"].append(note)
        elif pointer is not None:
            decision["reasons"].append("this version is already in production")
        decision["production_before"] = pointer["version"] if pointer else None
        decision["production_mae"] = prod_mae

        if meta is None:
            meta = {
                "model_name": s.model_name,
                "version": version,
                "created_at": iso(dt.datetime.now(dt.UTC)),
                "run_id": run.run_id,
                "code_version": code_version(),
                "target": spec.target,
                "horizon": H,
                "spec": spec.to_dict(),
                "features": spec.columns(),
                "weather": WEATHER_NOTE if spec.future_weather else "no weather after t is used",
                "params": model.params,
                "model": model.state(),
                "data": {
                    "window": [iso(as_of - window), iso(as_of)],
                    "observations": len(obs),
                    "locations": int(obs["location_id"].nunique()),
                    "fingerprint": fp,
                    "blocks": fit.blocks,
                    "holdout": [iso(holdout_start), iso(holdout_end)],
                },
                "rows": rows,
                "metrics": {"holdout": metrics},
                "baselines": {b: metrics[b] for b in ("persistence", "seasonal_naive")},
                "backtest": folds,
            }
        meta["gate"] = decision
        if report is not None:
            registry.save(version, model, meta, report)
        else:  # a re-run: the version stands, only its latest gate decision is recorded
            services.store.put_json(registry.key(version, "metadata.json"), meta)

        promoted = False
        if decision["promote"] and (pointer is None or pointer["version"] != version):
            registry.promote(version, generation, run_id=run.run_id, mae=metrics["model"]["mae"])
            promoted = True
        run.status = "success" if decision["promote"] else "rejected"
        run.counts = {k: int(v) for k, v in rows.items()}
        run.answer.update(
            promoted=promoted,
            production=version if decision["promote"] else (pointer or {}).get("version"),
            gate=decision,
            metrics={
                "mae": metrics["model"]["mae"],
                "rmse": metrics["model"]["rmse"],
                "coverage": metrics["model"]["coverage"],
                "persistence_mae": metrics["persistence"]["mae"],
                "seasonal_naive_mae": metrics["seasonal_naive"]["mae"],
            },
        )
        return run.result()


def gate(metrics: dict[str, Any], margin: float) -> dict[str, Any]:
    """First condition of the gate: beat seasonal naive by `margin` on the holdout."""
    mae, naive = metrics["model"]["mae"], metrics["seasonal_naive"]["mae"]
    ok = mae <= naive * (1 - margin)
    verdict = "beats" if ok else "does not beat"
    reasons = [f"MAE {mae:.3f} {verdict} seasonal naive {naive:.3f} by the {margin:.0%} margin"]
    return {"promote": ok, "reasons": reasons}


def production_mae(
    registry: Registry,
    version: str,
    obs: pd.DataFrame,
    spec: FeatureSpec,
    places: pd.DataFrame,
    start: dt.datetime,
    end: dt.datetime,
    max_rows: int,
    metrics: dict[str, Any],
) -> tuple[float | None, str]:
    """The production model's MAE on the candidate's holdout rows (None if not comparable)."""
    try:
        model, meta = registry.load(version)
    except Exception as exc:  # an unreadable production model must not block a good one
        return None, f"production {version} could not be loaded ({exc}); compared to baselines only"
    pspec = FeatureSpec(**meta["spec"])
    if (pspec.target, pspec.horizon) != (spec.target, spec.horizon):
        return None, f"production {version} forecasts another target or horizon; not comparable"
    m, _, _ = holdout_metrics(model, obs, pspec, places, start, end, max_rows)
    if m["rows"] != metrics["rows"]:
        return None, "production model's holdout rows differ; compared to baselines only"
    return m["model"]["mae"], ""


def backtest(
    obs: pd.DataFrame,
    spec: FeatureSpec,
    places: pd.DataFrame,
    first: dt.datetime,
    holdout_start: dt.datetime,
    settings: Any,
    max_rows: int,
    params: dict[str, Any],
) -> list[dict[str, Any]]:
    """Rolling-origin folds before the holdout: refit up to each origin, test the next block."""
    folds = []
    block = dt.timedelta(days=settings.train_holdout_days)
    gap = dt.timedelta(hours=spec.horizon)
    for k in range(settings.train_backtest_folds, 0, -1):
        origin = holdout_start - k * (block + gap)
        if origin - first < dt.timedelta(hours=20 * spec.horizon):
            continue  # not enough history before this origin
        try:
            fit = fit_model(
                obs, spec, places, first, origin, max(max_rows // 4, 1000), params=params
            )
            m, _, _ = holdout_metrics(
                fit.model, obs, spec, places, origin, origin + block, HOLDOUT_ROWS
            )
        except ValueError as exc:
            folds.append({"origin": iso(origin), "skipped": str(exc)})
            continue
        folds.append(
            {
                "origin": iso(origin),
                "rows": m["rows"],
                "mae": m["model"]["mae"],
                "rmse": m["model"]["rmse"],
                "coverage": m["model"]["coverage"],
                "persistence_mae": m["persistence"]["mae"],
                "seasonal_naive_mae": m["seasonal_naive"]["mae"],
                "ratio_persistence": ratio(m),
            }
        )
    return folds


def code_version() -> str:
    """The package version plus the deployed revision or commit when the platform says it."""
    rev = os.environ.get("K_REVISION") or os.environ.get("AIRCAST_CODE_VERSION")
    return f"{common.__version__}+{rev}" if rev else common.__version__


def _report(keys: pd.DataFrame, q: Any, metrics: dict[str, Any], version: str) -> bytes:
    from common.forecasting.report import backtest_png

    return backtest_png(keys, q, metrics, version)
