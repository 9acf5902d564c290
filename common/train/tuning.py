"""Bounded hyperparameter search: a small space, rolling-origin folds before the holdout,
a time budget.

Run on request (`{"tune": true}` in the train body) and by a weekly schedule. The search
(optuna's seeded TPE sampler) tries at most `tune_max_trials` parameter sets and stops
starting new ones once `tune_budget_seconds` have passed. Each trial refits the production
code (`fit_model`: fit, validation, per-horizon shrinkage, calibration) on issue times up
to each fold's origin and scores the next block; the objective is the mean over folds of
MAE / persistence MAE. The data handed to the search is cut at the holdout's first issue
time, so no holdout row can be read, whatever a fold does.

The chosen parameters are written to models/<name>/tuning.json; later train runs fit with
them and record them in their version's metadata.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import optuna

from common.core.logs import event, get_logger
from common.core.timeutil import iso
from common.forecasting.evaluation import ratio
from common.forecasting.training import (
    IssueWindow,
    TrainingData,
    cut_observations,
    fit_model,
    holdout_metrics,
)
from common.forecasting.versions import TUNING_FILE

__all__ = ["TUNING_FILE", "TuneBudget", "tune"]

FOLDS = 2
FOLD_ROWS = 500_000  # rows each fold is scored on (bounded, like the job's holdout)
log = get_logger(__name__)


@dataclass(frozen=True)
class TuneBudget:
    """How much the search may do: trials, wall seconds, rows per fold fit."""

    seconds: float
    max_trials: int
    max_rows: int
    threads: int = 2
    seed: int = 0


def space(trial: optuna.Trial) -> dict[str, Any]:
    """The searched parameters (the neighbour radius is a fixed constant of the features)."""
    return {
        "max_depth": trial.suggest_int("max_depth", 4, 10),
        "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.2, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
        "horizon_weight_power": trial.suggest_float("horizon_weight_power", 0.0, 1.0),
    }


def folds(
    history: IssueWindow, block: dt.timedelta, horizon: int
) -> list[tuple[dt.datetime, dt.datetime]]:
    """(origin, end) of each rolling-origin fold; every target hour <= history.end."""
    gap = dt.timedelta(hours=horizon)
    out = []
    for k in range(FOLDS, 0, -1):
        origin = history.end - k * (block + gap)
        if origin - history.start >= dt.timedelta(hours=12 * horizon):  # fit_model's minimum
            out.append((origin, origin + block))
    return out


def tune(
    data: TrainingData, history: IssueWindow, block: dt.timedelta, budget: TuneBudget
) -> dict[str, Any]:
    """Search the space on folds before `history.end` (the holdout's start)."""
    before = replace(data, obs=cut_observations(data.obs, history.end))
    plan = folds(history, block, data.spec.horizon)
    if not plan:
        raise ValueError("not enough history before the holdout for a tuning fold")
    fixed = {"nthread": budget.threads, "seed": budget.seed}

    def objective(trial: optuna.Trial) -> float:
        params = {**space(trial), **fixed}
        scores = []
        for origin, end in plan:
            fit = fit_model(
                before, IssueWindow(history.start, origin, budget.max_rows), params=params
            )
            m, _, _ = holdout_metrics(fit.model, before, IssueWindow(origin, end, FOLD_ROWS))
            scores.append(ratio(m))
        return float(sum(scores) / len(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=budget.seed)
    )
    # The defaults first, so the search can only keep or improve on them.
    study.enqueue_trial(
        {
            "max_depth": 8,
            "learning_rate": 0.08,
            "min_child_weight": 20.0,
            "horizon_weight_power": 1.0,
        }
    )
    t0 = time.monotonic()
    study.optimize(objective, n_trials=budget.max_trials, timeout=budget.seconds)
    seconds = time.monotonic() - t0
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    stopped = "trials" if len(study.trials) >= budget.max_trials else "time"
    result = {
        "params": dict(study.best_params),
        "objective": "mean over folds of MAE / persistence MAE",
        "best_value": float(study.best_value),
        "default_value": done[0].value if done else None,
        "trials": len(study.trials),
        "stopped_by": stopped,
        "budget": {
            "seconds": budget.seconds,
            "max_trials": budget.max_trials,
            "max_rows": budget.max_rows,
        },
        "seconds": round(seconds, 1),
        "folds": [[iso(a), iso(b)] for a, b in plan],
        "data_end": iso(history.end),
    }
    event(log, "tuned", logging.INFO, **{k: result[k] for k in ("trials", "stopped_by")})
    return result
