"""The version under decision: fitted and evaluated now, or loaded when an earlier run wrote
it; and the production model scored on the same holdout rows for the gate."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from common.core.config import Settings
from common.forecasting.model import ForecastModel
from common.forecasting.registry import Registry
from common.forecasting.training import TrainingData, fit_model, holdout_metrics
from common.forecasting.versions import BacktestFold, ModelMetadata, TuningChoice
from common.train.gate import ProductionScore, group_scores, losing_to_persistence, paired_interval
from common.train.plan import TrainPlan
from common.train.report import backtest, backtest_report


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
) -> Candidate:
    """Fit and evaluate the version, or load it when an earlier run already wrote it."""
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
        report=backtest_report(keys, q, metrics, plan.version),
        holdout=(keys, q),
    )


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
