"""The version under decision: fitted and evaluated now, or loaded when an earlier run wrote
it; and the production model scored on the same holdout rows for the gate."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from common.core.config import Settings
from common.forecasting.model import ForecastModel
from common.forecasting.registry import Registry
from common.forecasting.training import TrainingData, fit_model, holdout_metrics
from common.forecasting.versions import BacktestFold, ModelMetadata, TuningChoice
from common.train.gate import (
    ProductionScore,
    group_horizons,
    group_scores,
    losing_to_persistence,
    paired_interval,
)
from common.train.plan import TrainPlan
from common.train.report import FoldTime, backtest, backtest_report

TAIL_SECONDS = 60.0  # saving the version, promoting it, the run's outcome row: a margin


@dataclass(frozen=True)
class Candidate:
    """The version under decision: fitted now, or found already written by an earlier run."""

    model: ForecastModel
    # holdout metrics of the model and the baselines: `evaluate`'s mapping, what the gate
    # reads (a loaded version's are its stored HoldoutMetrics, dumped to the same shape)
    metrics: dict[str, Any]
    rows: dict[str, int]
    backtest: list[BacktestFold]
    blocks: dict[str, list[str]] = field(default_factory=dict)  # of the fit, when fitted now
    metadata: ModelMetadata | None = None  # set when the version was already written
    report: bytes | None = None  # set when fitted by this run
    holdout: tuple[pd.DataFrame, np.ndarray] | None = None  # keys and forecasts, when fitted


def fit_or_load(
    registry: Registry,
    settings: Settings,
    data: TrainingData,
    plan: TrainPlan,
    tuning: TuningChoice | None = None,
    deadline: dt.datetime | None = None,
) -> Candidate:
    """Fit and evaluate the version, or load it when an earlier run already wrote it.

    Its backtest folds run only while `deadline` (when this target's work must be done)
    leaves room for them and for the steps after them (`common.train.report`): a fold is
    estimated at the candidate's own fit time until one has run (it refits a quarter of
    those rows and reads nothing), the steps after at twice the holdout's time (production
    is scored on the same rows read again; the drift references read fewer) plus
    TAIL_SECONDS."""
    if registry.exists(plan.version):
        model, meta = registry.load(plan.version)
        return Candidate(
            model,
            meta.metrics.holdout.model_dump(),
            meta.rows,
            meta.backtest,
            metadata=meta,
        )
    tuned = tuning.params if tuning is not None else {}
    threads: dict[str, Any] = {**tuned, "nthread": settings.train_threads}
    n_folds = settings.train_backtest_folds
    fit = fit_model(data, plan.history, params=threads, keep=n_folds > 0)
    t0 = time.monotonic()
    metrics, keys, q = served_holdout(fit.model, data, plan)
    clock = None
    if deadline is not None:
        # after the folds: production scored on the holdout rows (read again), the drift
        # references read, the version saved; the holdout's own time measures the first
        left = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
        clock = FoldTime(
            deadline=time.monotonic() + left,
            reserve=2 * (time.monotonic() - t0) + TAIL_SECONDS,
            estimate=fit.seconds,
        )
    folds = backtest(
        data,
        fit.examples or {},
        plan.history,
        dt.timedelta(days=settings.train_holdout_days),
        n_folds,
        threads,
        clock,
    )
    fit.examples = None  # the rows are the folds' only
    return Candidate(
        fit.model,
        metrics,
        {**fit.rows, "holdout": metrics["rows"]},
        folds,
        blocks=fit.blocks,
        report=backtest_report(keys, q, metrics, plan.version),
        holdout=(keys, q),
    )


def served_holdout(
    model: ForecastModel, data: TrainingData, plan: TrainPlan
) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    """The holdout scored as the version will be served, and where it starts serving.

    The holdout is replayed as predict serves it: the combination with the baselines from
    the calibration weights, stepped by each verified hour. Where that forecast loses to
    persistence in a horizon group of the gate, the version's own evidence says the model
    does not hold there yet: its weights start as persistence at those horizons
    (`Weights.as_persistence`, stored in its metadata as every start is), and the holdout
    is replayed again from that start, so the gate judges exactly what predict will serve.
    The model's weight there grows back online as verified hours show it winning. The
    groups and their scores before are kept in the metrics (`served_as_persistence`).
    """
    metrics, keys, q = holdout_metrics(model, data, plan.holdout)
    losing = losing_to_persistence(group_scores(metrics["by_horizon"]))
    if not losing or model.combination is None:
        return metrics, keys, q
    horizons = [h for g in losing for h in group_horizons(g["group"])]
    model.combination = model.combination.as_persistence(horizons)
    metrics, keys, q = holdout_metrics(model, data, plan.holdout)
    metrics["served_as_persistence"] = [
        {k: g[k] for k in ("group", "n", "mae", "persistence_mae")} for g in losing
    ]
    return metrics, keys, q


def score_production(
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
    spec = meta.feature_spec()
    if (spec.target, spec.horizon) != (data.spec.target, data.spec.horizon):
        return ProductionScore(
            version,
            note=f"production {version} forecasts another target or horizon; not comparable",
        )
    scored = TrainingData(data.obs, spec, data.places, data.as_issued)
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
    losing = tuple(
        g["group"]
        for g in losing_to_persistence(group_scores(m["by_horizon"]), settings.gate_tolerance)
    )
    age = (plan.as_of - meta.trained_through).total_seconds() / 86400
    return ProductionScore(
        version, m["model"]["mae"], noise=noise, losing_groups=losing, age_days=age
    )
