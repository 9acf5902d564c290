"""Fitting and evaluating a model on a time window: the code the train job and the
benchmark share.

Time order is never shuffled. Issue times in [start, end - H] (so every target hour is at
or before `end`) are split into fit (first 80%), validation for early stopping (next 10%)
and calibration of the intervals (last 10%), with an H-hour gap between blocks so that no
target hour of one block is an input hour of the next.

Every fit and evaluation reads the same three things (`TrainingData`) over a span of issue
times with a row budget (`IssueWindow`): two small values instead of seven arguments.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.forecasting.evaluation import evaluate
from common.forecasting.features import FeatureSpec, training_examples
from common.forecasting.model import DEFAULT_PARAMS, ForecastModel

__all__ = ["FitResult", "IssueWindow", "TrainingData", "fit_model", "holdout_metrics"]

FIT_SHARE, VAL_SHARE = 0.8, 0.1


@dataclass(frozen=True)
class TrainingData:
    """What examples are built from: observations, the feature recipe, the locations."""

    obs: pd.DataFrame
    spec: FeatureSpec
    places: pd.DataFrame


@dataclass(frozen=True)
class IssueWindow:
    """Issue times in [start, end] and at most `max_rows` examples, sampled with `seed`."""

    start: dt.datetime
    end: dt.datetime
    max_rows: int
    seed: int = 0


@dataclass
class FitResult:
    model: ForecastModel
    rows: dict[str, int]
    blocks: dict[str, list[str]]  # name -> [first issue time, last issue time]


def _blocks(
    start: dt.datetime, end: dt.datetime, horizon: int
) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    last = end - dt.timedelta(hours=horizon)
    span = (last - start).total_seconds() / 3600
    if span < 10 * horizon:
        raise ValueError(
            f"training window {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} is too short "
            f"for horizon {horizon}"
        )
    gap = dt.timedelta(hours=horizon)
    fit_end = start + dt.timedelta(hours=int(span * FIT_SHARE))
    val_end = start + dt.timedelta(hours=int(span * (FIT_SHARE + VAL_SHARE)))
    return {
        "fit": (start, fit_end - gap),
        "validation": (fit_end, val_end - gap),
        "calibration": (val_end, last),
    }


def fit_model(
    data: TrainingData, window: IssueWindow, params: Mapping[str, Any] | None = None
) -> FitResult:
    """Fit on observations with ts <= window.end, issue times from window.start."""
    spec, places, seed, max_rows = data.spec, data.places, window.seed, window.max_rows
    obs = data.obs[pd.to_datetime(data.obs["ts"], utc=True) <= pd.Timestamp(window.end)]
    blocks = _blocks(window.start, window.end, spec.horizon)
    budget = {"fit": max_rows, "validation": max_rows // 8, "calibration": max_rows // 8}
    examples = {}
    for name, (a, b) in blocks.items():
        # Targets must stay inside the block: cut the observations at its end + H.
        cut = obs[
            pd.to_datetime(obs["ts"], utc=True)
            <= pd.Timestamp(b + dt.timedelta(hours=spec.horizon))
        ]
        examples[name] = training_examples(cut, spec, a, b, places, budget[name], seed)
    model = ForecastModel(spec.columns(), spec.horizon, {**DEFAULT_PARAMS, **(params or {})})
    X, y, _ = examples["fit"]
    Xv, yv, _ = examples["validation"]
    if len(X) == 0 or len(Xv) == 0:
        raise ValueError("not enough observed history in the training window to fit a model")
    model.fit(X, y, Xv, yv)
    Xc, yc, _ = examples["calibration"]
    model.calibrate(Xc, yc)
    return FitResult(
        model,
        {k: len(v[1]) for k, v in examples.items()},
        {k: [a.isoformat(), b.isoformat()] for k, (a, b) in blocks.items()},
    )


def holdout_metrics(
    model: ForecastModel, data: TrainingData, window: IssueWindow
) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    """Metrics of `model` and the baselines for issue times in the window."""
    X, _, keys = training_examples(
        data.obs, data.spec, window.start, window.end, data.places, window.max_rows, window.seed
    )
    if len(X) == 0:
        raise ValueError("no evaluation rows in the holdout window")
    q = model.predict(X)
    return evaluate(keys, q), keys, q
