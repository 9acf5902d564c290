"""The train job: fit on the training window, evaluate, write a version, gate, promote.

Data: observations with ts in (as_of - AIRCAST_TRAIN_WINDOW_DAYS, as_of], nothing later.
The last AIRCAST_TRAIN_HOLDOUT_DAYS of issue times (whose targets are <= as_of) are held
out; the model is fitted on what comes before and is the one that is evaluated, saved and
possibly promoted. Earlier rolling-origin folds (each refit on a quarter of the row budget,
from the rows the candidate already built; run only while the run's deadline leaves room,
else recorded as skipped: `common.train.report`) show how stable the skill is; they
inform, the gate decides on the holdout:

- the candidate's MAE must beat seasonal naive by AIRCAST_GATE_MARGIN,
- not be worse than persistence in any horizon group (`common.train.gate.HORIZON_GROUPS`)
  as served, combined with the baselines (served as persistence from the start where the
  version lost to it: `common.train.candidate.served_holdout`; no waiver), and
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

The job reads as its steps: read the data, plan the windows (`common.train.plan`), get the
candidate, fit or load (`common.train.candidate`, its report in `common.train.report`),
score production on the same rows, refit the backtest folds on the candidate's rows
(`common.train.report`), let `common.train.gate` decide,
save with its metadata (`common.train.metadata`), promote.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from common.core.config import Settings
from common.core.errors import CallerError, Conflict
from common.core.faults import checkpoint
from common.core.schema import TRAIN_WINDOW_MAX_DAYS
from common.core.timeutil import UTCDateTime
from common.forecasting.features import FeatureSpec
from common.forecasting.registry import Registry
from common.forecasting.training import TrainingData
from common.forecasting.versions import (
    TUNING_FILE,
    GateRecord,
    ModelMetadata,
    ProductionPointer,
    TuningChoice,
)
from common.monitoring import drift
from common.monitoring.thresholds import LEVELS
from common.runtime import locations as locations_mod
from common.runtime.runs import Outcome, Run, RunAnswer, run_job
from common.runtime.services import Services
from common.train.candidate import Candidate, fit_or_load, run_backtest, score_production
from common.train.gate import GateDecision, decide
from common.train.inputs import as_issued_inputs, spec_for
from common.train.metadata import drift_sample, version_metadata
from common.train.observations import WindowSummary, observations, summarise
from common.train.plan import TrainPlan, plan_training


class HoldoutSummary(BaseModel):
    """The version's holdout scores against the baselines (the metadata holds them all)."""

    mae: float
    rmse: float
    coverage: float
    persistence_mae: float
    seasonal_naive_mae: float


class TrainedVersion(BaseModel):
    """What training a target gave, set as far as it got: one target's part of the answer
    and, at the answer's top level, the first trained target's."""

    model_name: str | None = None
    version: str | None = None
    tuning: TuningChoice | None = None
    promoted: bool | None = None
    production: str | None = None
    gate: GateRecord | None = None
    metrics: HoldoutSummary | None = None


class TargetTraining(TrainedVersion):
    """One target's part of the answer."""

    model_config = ConfigDict(extra="forbid")

    target: str
    status: str | None = None  # the target's own outcome (success, rejected, failed)
    error: str | None = None


class TrainAnswer(TrainedVersion, RunAnswer):
    """The train function's answer: each target's (`targets`), and at the top level the
    first trained target's, as a single-target deployment has always answered."""

    targets: dict[str, TargetTraining] | None = None
    target: str | None = None


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


def run_train(request: TrainRequest, services: Services) -> dict[str, Any]:
    """Train, evaluate, gate and perhaps promote one version per target (see the module
    docstring); a request naming `target` trains that one alone."""
    settings = services.settings
    targets = (
        settings.forecast_targets
        if request.target is None
        else (settings.target_of(request.target),)
    )  # a target not forecast here: 400 before any run is recorded
    return run_job(
        "train",
        request,
        services,
        lambda run: _train(request, services, run, targets),
        answer=TrainAnswer,
        hold_warehouse=False,
    )


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
    for i, target in enumerate(targets):
        answer = answers[target] = {"target": target}
        try:
            deadline = _target_deadline(run.deadline_at, len(targets) - i)
            outcome = _train_target(request, services, run, target, answer, deadline)
        except Exception as exc:
            answer.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            failures.append(exc)
            continue
        answer.update(outcome.answer, status=outcome.status)
        outcomes[target] = outcome
    first = next((t for t in targets if t in outcomes), targets[0])
    run.answer.update({k: v for k, v in answers[first].items() if k not in ("status", "error")})
    fatal = [e for e in failures if not isinstance(e, CallerError)]
    if fatal or (failures and not outcomes):
        raise (fatal or failures)[0]
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        for k, v in outcome.counts.items():
            counts[k] = counts.get(k, 0) + int(v)
    statuses = {o.status for o in outcomes.values()}
    status = statuses.pop() if len(statuses) == 1 and not failures else "partial"
    return Outcome(counts=counts, status=status)


def _target_deadline(run_deadline: dt.datetime | None, targets_left: int) -> dt.datetime | None:
    """When this target's work should be done: an equal share of the time left before the
    run's deadline (its function's timeout) for it and each target after it."""
    if run_deadline is None:
        return None
    now = dt.datetime.now(dt.UTC)
    return now + (run_deadline - now) / max(targets_left, 1)


def _train_target(
    request: TrainRequest,
    services: Services,
    run: Run,
    target: str,
    answer: dict[str, Any],
    deadline: dt.datetime | None = None,
) -> Outcome:
    """One target's version: read, plan, fit or load, score production, backtest, gate,
    promote; its optional backtest folds only while `deadline` leaves room (`run_backtest`)."""
    settings = services.settings
    window = dt.timedelta(days=request.window_days or settings.train_window_days)
    start = run.as_of - window
    with services.warehouse.session():  # the reads in one connection; the fit holds none
        spec, cams_input = spec_for(settings, target, services.warehouse, run.as_of, run.run_id)
        data, summary = _read(services, spec, start, run.as_of)
    registry = Registry.of_target(services.store, settings, target)
    pointer, generation = registry.production()
    tuning = _tuning(registry, settings, request, data, summary, start, run.as_of)
    plan = plan_training(request.max_rows, settings, summary, spec, start, run.as_of, tuning)
    answer["model_name"] = registry.name
    answer["version"] = plan.version
    if tuning is not None:
        answer["tuning"] = tuning.to_json()

    candidate = fit_or_load(registry, settings, data, plan, tuning)
    production = None
    if pointer is not None:
        production = score_production(registry, pointer.version, data, plan, candidate, settings)
    candidate = run_backtest(candidate, settings, data, plan, tuning, deadline)
    decision = decide(
        candidate.metrics,
        production,
        version=plan.version,
        margin=settings.gate_margin,
        tolerance=settings.gate_tolerance,
        max_age_days=LEVELS["model_age"].warn,
    )
    meta = candidate.metadata or version_metadata(
        registry.name, data, summary, plan, candidate, run.run_id, tuning, cams_input
    )
    sample = None if candidate.metadata else drift_sample(data, plan.as_of)
    _save(registry, candidate, meta.model_copy(update={"gate": decision.record()}), sample)
    checkpoint("train:version-written")  # tests: the version saved, the pointer not yet moved

    promoted = decision.promote and (pointer is None or pointer.version != plan.version)
    if promoted:
        registry.promote(
            plan.version, generation, run_id=run.run_id, mae=candidate.metrics["model"]["mae"]
        )
    return _outcome(candidate, decision, plan, pointer, promoted)


def _read(
    services: Services, spec: FeatureSpec, start: dt.datetime, as_of: dt.datetime
) -> tuple[TrainingData, WindowSummary]:
    """The training window's data (whole or sampled, see `common.train.observations`) and its
    summary; a 409 when the window holds no observations."""
    places = locations_mod.current(services.warehouse)
    summary = summarise(services.warehouse, spec, start, as_of)
    if summary.observations == 0:
        raise Conflict("no observations in the training window: run ingest first", "as_of")
    obs = observations(services.warehouse, spec, start, as_of, summary)
    inputs = as_issued_inputs(services.warehouse, spec, as_of)  # forecasts issued by as_of
    return TrainingData(obs, spec, places, inputs), summary


def _outcome(
    candidate: Candidate,
    decision: GateDecision,
    plan: TrainPlan,
    pointer: ProductionPointer | None,
    promoted: bool,
) -> Outcome:
    """One target's answer: whether it was promoted, what is in production, the gate and the
    holdout metrics against the baselines."""
    metrics = candidate.metrics
    ran = sum(f.skipped is None for f in candidate.backtest)
    return Outcome(
        # the folds run and skipped (why: the version's metadata) beside the rows
        counts={
            **{k: int(v) for k, v in candidate.rows.items()},
            "backtest_folds": ran,
            "backtest_skipped": len(candidate.backtest) - ran,
        },
        answer={
            "promoted": promoted,
            "production": plan.version if decision.promote else pointer and pointer.version,
            "gate": decision.record().to_json(),
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


def _tuning(
    registry: Registry,
    settings: Settings,
    request: TrainRequest,
    data: TrainingData,
    summary: WindowSummary,
    window_start: dt.datetime,
    as_of: dt.datetime,
) -> TuningChoice | None:
    """The tuning to fit with: searched now when asked (once per as_of and data), else the
    newest stored one, else None (the default parameters)."""
    key = f"{registry.prefix}/{TUNING_FILE}"
    stored = (
        TuningChoice.model_validate_json(registry.store.get(key))
        if registry.store.exists(key)
        else None
    )
    if not request.tune:
        return stored
    base = plan_training(request.max_rows, settings, summary, data.spec, window_start, as_of)
    if stored is not None and (stored.as_of, stored.fingerprint) == (as_of, base.fingerprint):
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
    result = TuningChoice(**found, as_of=as_of, fingerprint=base.fingerprint)
    registry.store.put_json(key, result.to_json())
    return result


def _save(
    registry: Registry, candidate: Candidate, meta: ModelMetadata, sample: bytes | None = None
) -> None:
    """Write the version (with its drift reference sample); a re-run (the version stands)
    records only its new gate decision."""
    if candidate.metadata is None:
        if sample is not None:  # before metadata.json, which registry.save writes last
            registry.store.put(registry.key(meta.version, drift.SAMPLE_FILE), sample)
        registry.save(meta.version, candidate.model, meta, candidate.report)
    else:
        registry.save_metadata(meta)
