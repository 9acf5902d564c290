"""The version under decision: fitted and evaluated now, or loaded when an earlier run wrote
it; and the production model scored on the same holdout rows for the gate."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from common.core.config import Settings
from common.forecasting.model import ForecastModel
from common.forecasting.registry import Registry
from common.forecasting.training import (
    Examples,
    TrainingData,
    fit_model,
    holdout_examples,
    holdout_metrics,
    score_examples,
)
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
    # rows held only until they are used, when fitted now: the holdout's (production is
    # scored on them) and the fit's (the backtest refits on them); seconds they took
    holdout_rows: Examples | None = None
    fit_rows: dict[str, Examples] | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def fit_or_load(
    registry: Registry,
    settings: Settings,
    data: TrainingData,
    plan: TrainPlan,
    tuning: TuningChoice | None = None,
) -> Candidate:
    """Fit and evaluate the version, or load it when an earlier run already wrote it.

    A fitted candidate keeps its fit rows (when backtest folds are asked for) and its
    holdout rows for the steps that use them (`score_production`, `run_backtest`), so
    neither reads the warehouse again."""
    if registry.exists(plan.version):
        model, meta = registry.load(plan.version)
        return Candidate(
            model,
            meta.metrics.holdout.model_dump(),
            meta.rows,
            meta.backtest,
            metadata=meta,
        )
    fit = fit_model(data, plan.history, params=_params(settings, tuning), keep=_folds(settings))
    t0 = time.monotonic()
    rows = holdout_examples(data, plan.holdout)
    metrics, keys, q = served_holdout(fit.model, rows)
    return Candidate(
        fit.model,
        metrics,
        {**fit.rows, "holdout": metrics["rows"]},
        [],
        blocks=fit.blocks,
        report=backtest_report(keys, q, metrics, plan.version),
        holdout=(keys, q),
        holdout_rows=rows,
        fit_rows=fit.examples,
        seconds={"fit": fit.seconds, "holdout": time.monotonic() - t0},
    )


def _params(settings: Settings, tuning: TuningChoice | None) -> dict[str, Any]:
    tuned = tuning.params if tuning is not None else {}
    return {**tuned, "nthread": settings.train_threads}


def _folds(settings: Settings) -> bool:
    return settings.train_backtest_folds > 0


def run_backtest(
    candidate: Candidate,
    settings: Settings,
    data: TrainingData,
    plan: TrainPlan,
    tuning: TuningChoice | None = None,
    deadline: dt.datetime | None = None,
) -> Candidate:
    """The candidate with its backtest folds (`common.train.report`), refitted on its fit
    rows, which it then lets go of (its holdout rows too: production is scored by now).

    The folds run only while `deadline` (when this target's work must be done) leaves room
    for them and for the steps after them: a fold is estimated at the candidate's own fit
    time until one has run (it refits a quarter of those rows and reads nothing); the steps
    after at the holdout's time (the drift references read fewer rows than the holdout)
    plus TAIL_SECONDS. A version found already written keeps the folds it recorded."""
    if candidate.metadata is not None:
        return candidate
    clock = None
    if deadline is not None:
        left = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
        clock = FoldTime(
            deadline=time.monotonic() + left,
            reserve=candidate.seconds.get("holdout", 0.0) + TAIL_SECONDS,
            estimate=candidate.seconds.get("fit", 0.0),
        )
    rows = candidate.fit_rows or {}
    candidate = replace(candidate, fit_rows=None, holdout_rows=None)  # held by `rows` alone
    folds = backtest(
        data,
        rows,
        plan.history,
        dt.timedelta(days=settings.train_holdout_days),
        settings.train_backtest_folds,
        _params(settings, tuning),
        clock,
    )
    return replace(candidate, backtest=folds)


def served_holdout(
    model: ForecastModel, rows: Examples
) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    """The holdout rows scored as the version will be served, and where it starts serving.

    The holdout is replayed as predict serves it: the combination with the baselines from
    the calibration weights, stepped by each verified hour. Where that forecast loses to
    persistence in a horizon group of the gate, the version's own evidence says the model
    does not hold there yet: its weights start as persistence at those horizons
    (`Weights.as_persistence`, stored in its metadata as every start is), and the same
    rows are replayed again from that start, so the gate judges exactly what predict will
    serve. The model's weight there grows back online as verified hours show it winning.
    The groups and their scores before are kept in the metrics (`served_as_persistence`).
    """
    metrics, keys, q = score_examples(model, *rows)
    losing = losing_to_persistence(group_scores(metrics["by_horizon"]))
    if not losing or model.combination is None:
        return metrics, keys, q
    horizons = [h for g in losing for h in group_horizons(g["group"])]
    model.combination = model.combination.as_persistence(horizons)
    metrics, keys, q = score_examples(model, *rows)
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
    if candidate.holdout_rows is not None and spec == data.spec:  # the same recipe's rows
        m, keys, q_prod = score_examples(model, *candidate.holdout_rows)
    else:
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
