"""The train job: fit on the training window, evaluate, write a version, gate, promote.

Data: observations with ts in (as_of - AIRCAST_TRAIN_WINDOW_DAYS, as_of], nothing later.
The last AIRCAST_TRAIN_HOLDOUT_DAYS of issue times (whose targets are <= as_of) are held
out; the model is fitted on what comes before and is the one that is evaluated, saved and
possibly promoted. Earlier rolling-origin folds (each refit on a quarter of the row budget)
show how stable the skill is; they inform, the gate decides on the holdout:

- the candidate's MAE must beat seasonal naive by AIRCAST_GATE_MARGIN,
- not be worse than persistence in any horizon group (`common.train.gate.HORIZON_GROUPS`;
  waived for the first version, when nothing is in production), and
- be better than the production model on the same holdout rows beyond the noise (a block
  bootstrap over issue days of the paired errors); "no evidence of a difference" keeps
  production (see `common.train.gate`).

With `{"tune": true}` (and weekly by schedule) a bounded search (`common.train.tuning`)
first picks parameters on folds before the holdout and writes models/<name>/tuning.json;
every later version is fitted with the newest tuning and records it in its metadata.

The version id is derived from as_of, a fingerprint of the training data and the recipe
(features, row budget, holdout), so re-running with the same inputs finds the version
already written and decides again without refitting. The fingerprint is an aggregate the
warehouse computes (`common.train.observations.summarise`); the whole window is read into
memory only when it is small, else every fit and evaluation reads its sampled selection
(`common.train.observations`), so memory follows the row budget, not the data.

Each target of AIRCAST_TARGETS has its own model (`Registry.of_target`), trained and gated
by the same steps in turn; one target's promotion is its own compare-and-swap, never tied
to another's (see `_train`).

The job reads as its steps: read the data, plan the windows, get the candidate (fit or
load), score production on the same rows, let `common.train.gate` decide, save, promote.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

import common
from common.core.config import Settings
from common.core.errors import AircastError, Conflict
from common.core.faults import checkpoint
from common.core.schema import TRAIN_WINDOW_MAX_DAYS
from common.core.timeutil import UTCDateTime, iso
from common.forecasting.evaluation import ratio
from common.forecasting.features import HISTORY_HOURS, FeatureSpec, grid_columns
from common.forecasting.model import ForecastModel
from common.forecasting.registry import Registry, trained_through
from common.forecasting.training import IssueWindow, TrainingData, fit_model, holdout_metrics
from common.monitoring import drift
from common.monitoring.drift import reference as drift_reference
from common.monitoring.thresholds import DRIFT_WINDOW_HOURS, LEVELS, NATURAL_PSI_QUANTILE
from common.runtime import locations as locations_mod
from common.runtime.runs import Outcome, Run, run_job
from common.runtime.services import Services
from common.train.gate import (
    ProductionScore,
    decide,
    group_scores,
    losing_to_persistence,
    paired_interval,
)
from common.train.observations import (
    WindowSummary,
    observations,
    recent,
    reference_rows,
    summarise,
)

HOLDOUT_ROWS = 250_000  # fixed, so candidate and production are scored on the same rows
WEATHER_NOTE = (
    "Training rows use the observed weather at the target hour as a stand-in for a weather "
    "forecast; predict uses the newest weather forecast issued at or before the issue time."
)


class TrainRequest(BaseModel):
    """Body of a POST to the train function (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    as_of: UTCDateTime | None = None
    window_days: int | None = Field(None, ge=7, le=TRAIN_WINDOW_MAX_DAYS)
    max_rows: int | None = Field(None, ge=1_000, le=20_000_000)
    tune: bool = Field(False, description="Search parameters first (bounded; see tuning).")
    target: str | None = Field(
        None,
        description="Train this target's model only (one of AIRCAST_TARGETS; default: each).",
    )


@dataclass(frozen=True)
class TrainPlan:
    """One run's identity and windows, derived from as_of, the settings and the data."""

    as_of: dt.datetime
    window_start: dt.datetime  # observations with ts in (window_start, as_of]
    version: str
    fingerprint: str
    history: IssueWindow  # issue times the candidate is fitted on, with the row budget
    holdout: IssueWindow  # issue times it is evaluated on (targets <= as_of)


@dataclass(frozen=True)
class Candidate:
    """The version under decision: fitted now, or found already written by an earlier run."""

    model: ForecastModel
    metrics: dict[str, Any]  # holdout metrics of the model and the baselines
    rows: dict[str, int]
    backtest: list[dict[str, Any]]
    blocks: dict[str, list[str]] = field(default_factory=dict)  # of the fit, when fitted now
    metadata: dict[str, Any] | None = None  # set when the version was already written
    report: bytes | None = None  # set when fitted by this run
    holdout: tuple[pd.DataFrame, np.ndarray] | None = None  # keys and forecasts, when fitted


def run_train(request: TrainRequest, services: Services) -> dict[str, Any]:
    """Train, evaluate, gate and perhaps promote one version per target (see the module
    docstring); a request naming `target` trains that one alone."""
    settings = services.settings
    targets = (
        settings.forecast_targets
        if request.target is None
        else (settings.target_of(request.target),)
    )  # a target not forecast here: 400 before any run is recorded
    return run_job("train", request, services, lambda run: _train(request, services, run, targets))


def _train(
    request: TrainRequest, services: Services, run: Run, targets: tuple[str, ...]
) -> Outcome:
    """Each target in turn, each with its own model, gate and pointer (its own
    compare-and-swap), so one target's failure leaves every other as its own run left it.

    The answer's `targets` holds each target's answer; its top-level fields are the first
    trained target's, as a single-target deployment has always answered. A target that
    fails with the caller's or the data's error (4xx: no data, too little history) is
    reported and the others go on (`partial`); any other failure fails the run (500, so
    the scheduler retries: re-runs are idempotent), as does every target failing.
    """
    answers: dict[str, dict[str, Any]] = {}
    run.answer["targets"] = answers
    outcomes: dict[str, Outcome] = {}
    failures: list[Exception] = []
    for target in targets:
        answer = answers[target] = {"target": target}
        try:
            outcome = _train_target(request, services, run, target, answer)
        except Exception as exc:
            answer.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            failures.append(exc)
            continue
        answer.update(outcome.answer, status=outcome.status)
        outcomes[target] = outcome
    first = next((t for t in targets if t in outcomes), targets[0])
    run.answer.update({k: v for k, v in answers[first].items() if k not in ("status", "error")})
    fatal = [e for e in failures if not (isinstance(e, AircastError) and e.status < 500)]
    if fatal or (failures and not outcomes):
        raise (fatal or failures)[0]
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        for k, v in outcome.counts.items():
            counts[k] = counts.get(k, 0) + int(v)
    statuses = {o.status for o in outcomes.values()}
    status = statuses.pop() if len(statuses) == 1 and not failures else "partial"
    return Outcome(counts=counts, status=status)


def _train_target(
    request: TrainRequest, services: Services, run: Run, target: str, answer: dict[str, Any]
) -> Outcome:
    """One target's version: read, plan, fit or load, score production, gate, promote."""
    settings = services.settings
    spec = FeatureSpec(target, settings.horizon, settings.future_weather)
    window = dt.timedelta(days=request.window_days or settings.train_window_days)
    start = run.as_of - window
    places = locations_mod.current(services.warehouse)
    summary = summarise(services.warehouse, spec, start, run.as_of, len(places))
    if summary.observations == 0:
        raise Conflict("no observations in the training window: run ingest first", "as_of")
    obs = observations(services.warehouse, spec, start, run.as_of, summary)
    data = TrainingData(obs, spec, places)
    registry = Registry.of_target(services.store, settings, target)
    pointer, generation = registry.production()
    tuning = _tuning(registry, settings, request, data, summary, start, run.as_of)
    plan = plan_training(request, settings, summary, spec, start, run.as_of, tuning)
    answer["model_name"] = registry.name
    answer["version"] = plan.version
    if tuning is not None:
        answer["tuning"] = tuning

    candidate = _candidate(registry, settings, data, plan, tuning)
    production = None
    if pointer is not None:
        production = _score_production(
            registry, pointer["version"], data, plan, candidate, settings
        )
    decision = decide(
        candidate.metrics,
        production,
        version=plan.version,
        margin=settings.gate_margin,
        tolerance=settings.gate_tolerance,
        max_age_days=LEVELS["model_age"].warn,
    )
    meta = candidate.metadata or _metadata(
        registry.name, data, summary, plan, candidate, run.run_id, tuning
    )
    sample = None if candidate.metadata else drift_sample(data, plan.as_of)
    _save(registry, plan.version, candidate, {**meta, "gate": decision.to_dict()}, sample)
    checkpoint("train:version-written")  # tests: the version saved, the pointer not yet moved

    promoted = decision.promote and (pointer is None or pointer["version"] != plan.version)
    if promoted:
        registry.promote(
            plan.version, generation, run_id=run.run_id, mae=candidate.metrics["model"]["mae"]
        )
    metrics = candidate.metrics
    return Outcome(
        counts={k: int(v) for k, v in candidate.rows.items()},
        answer={
            "promoted": promoted,
            "production": plan.version if decision.promote else (pointer or {}).get("version"),
            "gate": decision.to_dict(),
            "metrics": {
                "mae": metrics["model"]["mae"],
                "rmse": metrics["model"]["rmse"],
                "coverage": metrics["model"]["coverage"],
                "persistence_mae": metrics["persistence"]["mae"],
                "seasonal_naive_mae": metrics["seasonal_naive"]["mae"],
            },
        },
        status="rejected" if decision.rejected else "success",
    )


def plan_training(
    request: TrainRequest,
    settings: Settings,
    summary: WindowSummary,
    spec: FeatureSpec,
    window_start: dt.datetime,
    as_of: dt.datetime,
    tuning: dict[str, Any] | None = None,
) -> TrainPlan:
    """The version id and the fit and holdout windows; a 409 when history is too short."""
    max_rows = request.max_rows or settings.train_max_rows
    fp = summary.fingerprint
    parts: list[Any] = [fp, spec.to_dict(), max_rows, settings.train_holdout_days]
    if tuning is not None:  # tuned parameters make another version (untuned ids unchanged)
        parts.append(tuning["params"])
    recipe = json.dumps(parts, sort_keys=True)
    version = f"{as_of:%Y%m%dT%H%MZ}-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"
    if summary.oldest is None:
        raise Conflict("no observations in the training window: run ingest first", "as_of")
    oldest = summary.oldest
    first = oldest + dt.timedelta(hours=HISTORY_HOURS)
    H = spec.horizon
    holdout_end = as_of - dt.timedelta(hours=H)
    holdout_start = holdout_end - dt.timedelta(days=settings.train_holdout_days)
    if holdout_start - first < dt.timedelta(hours=20 * H):
        raise Conflict(
            f"not enough history to train: observations from {iso(oldest)} "
            f"to {iso(as_of)}; need about {settings.train_holdout_days} holdout days plus "
            f"{20 * H // 24 + HISTORY_HOURS // 24} days before them",
            "as_of",
        )
    return TrainPlan(
        as_of=as_of,
        window_start=window_start,
        version=version,
        fingerprint=fp,
        history=IssueWindow(first, holdout_start, max_rows),
        holdout=IssueWindow(holdout_start, holdout_end, HOLDOUT_ROWS),
    )


def _tuning(
    registry: Registry,
    settings: Settings,
    request: TrainRequest,
    data: TrainingData,
    summary: WindowSummary,
    window_start: dt.datetime,
    as_of: dt.datetime,
) -> dict[str, Any] | None:
    """The tuning to fit with: searched now when asked (once per as_of and data), else the
    newest stored one, else None (the default parameters)."""
    key = f"{registry.prefix}/tuning.json"
    stored = registry.store.get_json(key) if registry.store.exists(key) else None
    if not request.tune:
        return stored
    base = plan_training(request, settings, summary, data.spec, window_start, as_of)
    if stored is not None and (stored.get("as_of"), stored.get("fingerprint")) == (
        iso(as_of),
        base.fingerprint,
    ):
        return stored  # a re-run: the same search was done, keep its answer
    from common.train.tuning import TuneBudget, tune

    budget = TuneBudget(
        seconds=settings.tune_budget_seconds,
        max_trials=settings.tune_max_trials,
        max_rows=max(base.history.max_rows // 4, 1000),
        threads=settings.train_threads,
    )
    try:
        found = tune(data, base.history, dt.timedelta(days=settings.train_holdout_days), budget)
    except ValueError as exc:
        raise Conflict(f"cannot tune: {exc}", "tune") from exc
    result = {**found, "as_of": iso(as_of), "fingerprint": base.fingerprint}
    registry.store.put_json(key, result)
    return result


def _candidate(
    registry: Registry,
    settings: Settings,
    data: TrainingData,
    plan: TrainPlan,
    tuning: dict[str, Any] | None = None,
) -> Candidate:
    """Fit and evaluate the version, or load it when an earlier run already wrote it."""
    if registry.exists(plan.version):
        model, meta = registry.load(plan.version)
        return Candidate(
            model,
            meta["metrics"]["holdout"],
            meta["rows"],
            meta["backtest"],
            metadata=meta,
        )
    threads = {**(tuning or {}).get("params", {}), "nthread": settings.train_threads}
    fit = fit_model(data, plan.history, params=threads)
    metrics, keys, q = holdout_metrics(fit.model, data, plan.holdout)
    folds = backtest(
        data,
        plan.history,
        dt.timedelta(days=settings.train_holdout_days),
        settings.train_backtest_folds,
        threads,
    )
    return Candidate(
        fit.model,
        metrics,
        {**fit.rows, "holdout": metrics["rows"]},
        folds,
        blocks=fit.blocks,
        report=_report(keys, q, metrics, plan.version),
        holdout=(keys, q),
    )


def _score_production(
    registry: Registry,
    version: str,
    data: TrainingData,
    plan: TrainPlan,
    candidate: Candidate,
    settings: Settings,
) -> ProductionScore:
    """The production model's MAE on the candidate's holdout rows, when comparable.

    Only a production version that is missing from the store leaves the baselines to
    decide alone; one that is there but cannot be read fails the run (nothing is promoted
    over a model nobody could compare with).
    """
    if version == plan.version:
        return ProductionScore(version)
    if not registry.exists(version):
        note = f"production {version} is missing from the store; compared to baselines only"
        return ProductionScore(version, note=note)
    model, meta = registry.load(version)  # there but unreadable: the run fails
    spec = FeatureSpec(**meta["spec"])
    if (spec.target, spec.horizon) != (data.spec.target, data.spec.horizon):
        return ProductionScore(
            version,
            note=f"production {version} forecasts another target or horizon; not comparable",
        )
    scored = TrainingData(data.obs, spec, data.places)
    m, keys, q_prod = holdout_metrics(model, scored, plan.holdout)
    if m["rows"] != candidate.metrics["rows"]:
        return ProductionScore(
            version, note="production model's holdout rows differ; compared to baselines only"
        )
    if candidate.holdout is not None:
        q_cand = candidate.holdout[1]
    else:  # a version written by an earlier run: score it again on the same rows
        _, _, q_cand = holdout_metrics(candidate.model, data, plan.holdout)
    actual = keys["actual"].to_numpy(float)
    days = pd.to_datetime(keys["issued_at"], utc=True).dt.floor("D").to_numpy()
    noise = paired_interval(
        np.abs(q_cand[:, 1] - actual),
        np.abs(q_prod[:, 1] - actual),
        days,
        samples=settings.gate_bootstrap_samples,
        confidence=settings.gate_confidence,
    )
    losing = tuple(g["group"] for g in losing_to_persistence(group_scores(m["by_horizon"])))
    age = (plan.as_of - trained_through(meta)).total_seconds() / 86400
    return ProductionScore(
        version, m["model"]["mae"], noise=noise, losing_groups=losing, age_days=age
    )


def _save(
    registry: Registry,
    version: str,
    candidate: Candidate,
    meta: dict[str, Any],
    sample: bytes | None = None,
) -> None:
    """Write the version (with its drift reference sample); a re-run (the version stands)
    records only its new gate decision."""
    if candidate.metadata is None:
        if sample is not None:  # before metadata.json, which registry.save writes last
            registry.store.put(registry.key(version, drift.SAMPLE_FILE), sample)
        registry.save(version, candidate.model, meta, candidate.report)
    else:
        registry.store.put_json(registry.key(version, "metadata.json"), meta)


def drift_sample(data: TrainingData, end: dt.datetime) -> bytes:
    """The inputs of the window's last drift window, a bounded sample (see drift.py)."""
    since = end - dt.timedelta(hours=DRIFT_WINDOW_HOURS)
    return drift.reference_sample(recent(data.obs, since), grid_columns(data.spec), since)


def _metadata(
    model_name: str,
    data: TrainingData,
    summary: WindowSummary,
    plan: TrainPlan,
    candidate: Candidate,
    run_id: str,
    tuning: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a version says about itself: recipe, data, rows, metrics and backtest."""
    spec, metrics = data.spec, candidate.metrics
    ref_rows = reference_rows(data.obs)
    references = {
        "reference": drift_reference(ref_rows, grid_columns(spec)),
        "reference_by_month": drift.monthly_reference(ref_rows, grid_columns(spec)),
    }
    return {
        "model_name": model_name,
        "version": plan.version,
        "created_at": iso(dt.datetime.now(dt.UTC)),
        "run_id": run_id,
        "code_version": code_version(),
        "target": spec.target,
        "horizon": spec.horizon,
        "spec": spec.to_dict(),
        "features": spec.columns(),
        "weather": WEATHER_NOTE if spec.future_weather else "no weather after t is used",
        "params": candidate.model.params,
        "tuning": tuning,
        "model": candidate.model.state(),
        "data": {
            "window": [iso(plan.window_start), iso(plan.as_of)],
            "observations": summary.observations,
            "locations": summary.locations,
            "fingerprint": plan.fingerprint,
            "blocks": candidate.blocks,
            "holdout": [iso(plan.holdout.start), iso(plan.holdout.end)],
        },
        "rows": candidate.rows,
        "metrics": {"holdout": metrics},
        "baselines": {b: metrics[b] for b in ("persistence", "seasonal_naive")},
        "backtest": candidate.backtest,
        # decile bins of every input over the training window and of each calendar month
        # of it (drift is measured against them), and how far the window's own weeks are
        **references,
        "reference_natural": drift.natural_psi(
            ref_rows, references, DRIFT_WINDOW_HOURS, NATURAL_PSI_QUANTILE
        ),
    }


def backtest(
    data: TrainingData,
    history: IssueWindow,
    block: dt.timedelta,
    folds: int,
    params: dict[str, Any],
) -> list[dict[str, Any]]:
    """Rolling-origin folds before the holdout: refit up to each origin, test the next block.

    `history` spans the issue times before the holdout with the candidate's row budget;
    each fold is refitted on a quarter of it.
    """
    out = []
    gap = dt.timedelta(hours=data.spec.horizon)
    for k in range(folds, 0, -1):
        origin = history.end - k * (block + gap)
        if origin - history.start < dt.timedelta(hours=20 * data.spec.horizon):
            continue  # not enough history before this origin
        try:
            budget = max(history.max_rows // 4, 1000)
            fit = fit_model(data, IssueWindow(history.start, origin, budget), params=params)
            m, _, _ = holdout_metrics(
                fit.model, data, IssueWindow(origin, origin + block, HOLDOUT_ROWS)
            )
        except ValueError as exc:
            out.append({"origin": iso(origin), "skipped": str(exc)})
            continue
        out.append(
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
    return out


def code_version() -> str:
    """The package version plus the deployed revision or commit when the platform says it."""
    rev = os.environ.get("K_REVISION") or os.environ.get("AIRCAST_CODE_VERSION")
    return f"{common.__version__}+{rev}" if rev else common.__version__


def _report(keys: pd.DataFrame, q: Any, metrics: dict[str, Any], version: str) -> bytes:
    from common.forecasting.report import backtest_png

    return backtest_png(keys, q, metrics, version)
