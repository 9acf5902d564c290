"""Fitting and evaluating a model on a time window: the code the train job and the
benchmark share.

Time order is never shuffled. Issue times in [start, end - H] (so every target hour is at
or before `end`) are split into fit (first 80%), validation for early stopping (next 10%)
and calibration of the intervals (last 10%), with an H-hour gap between blocks so that no
target hour of one block is an input hour of the next.

Every fit and evaluation reads the same three things (`TrainingData`) over a span of issue
times with a row budget (`IssueWindow`): two small values instead of seven arguments.

The observations are either a frame in memory (small data: every row is read once) or an
`ObservationSource` that reads bounded slices on demand (the warehouse, in the train job).
From a source, examples are a sampled selection (`common.forecasting.sampling`) whose memory
follows the row budget and MAX_CELLS, not locations x window.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from common.core.errors import Conflict
from common.forecasting.as_issued import AsIssuedInputs
from common.forecasting.combination import online_weights
from common.forecasting.evaluation import evaluate
from common.forecasting.examples import training_examples
from common.forecasting.features import FeatureSpec
from common.forecasting.model import DEFAULT_PARAMS, ForecastModel
from common.forecasting.sampling import ObservationSource, read_as_issued, sampled_examples

__all__ = [
    "Examples",
    "FitResult",
    "IssueWindow",
    "TrainingData",
    "block_budgets",
    "cut_observations",
    "examples",
    "fit_blocks",
    "fit_examples",
    "fit_model",
    "holdout_examples",
    "holdout_metrics",
    "score_examples",
]

FIT_SHARE, VAL_SHARE = 0.8, 0.1


# A frame in memory or a source read in slices. Declared an alias: pandas is untyped (Any) to
# the checker, and a bare `Any | X` assignment is a variable, not a type.
Observations: TypeAlias = pd.DataFrame | ObservationSource


@dataclass(frozen=True)
class TrainingData:
    """What examples are built from: observations (a frame in memory or a source read in
    bounded slices), the feature recipe, the locations, and where the forecasts as issued
    (weather, CAMS) are read from (none: every forecast input is missing)."""

    obs: Observations
    spec: FeatureSpec
    places: pd.DataFrame
    as_issued: AsIssuedInputs | None = None


@dataclass(frozen=True)
class IssueWindow:
    """Issue times in [start, end] and at most `max_rows` examples, sampled with `seed`."""

    start: dt.datetime
    end: dt.datetime
    max_rows: int
    seed: int = 0


Examples: TypeAlias = tuple[pd.DataFrame, np.ndarray, pd.DataFrame]  # (X, y, keys)


@dataclass
class FitResult:
    model: ForecastModel
    rows: dict[str, int]
    blocks: dict[str, list[str]]  # name -> [first issue time, last issue time]
    seconds: float = 0.0  # wall seconds of the fit and calibration alone (no reads)
    # the fit, validation and calibration rows, when the caller asked to keep them
    examples: dict[str, Examples] | None = None


class NotEnoughHistory(Conflict, ValueError):
    """Too few observed rows to fit (409, the data must change first, whatever the request
    asked: a plain train and a tuning one answer alike). Still a ValueError, so a backtest
    fold without the history simply skips."""


def fit_blocks(
    start: dt.datetime, end: dt.datetime, horizon: int
) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """Issue times of the fit, validation and calibration blocks of [start, end - H], an
    H-hour gap between them (module docstring)."""
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


def block_budgets(max_rows: int) -> dict[str, int]:
    """Rows of each block for a row budget: validation and calibration an eighth of the
    fit's, so that the three blocks (80/10/10 % of the issue times) are sampled alike."""
    return {"fit": max_rows, "validation": max_rows // 8, "calibration": max_rows // 8}


def fit_model(
    data: TrainingData,
    window: IssueWindow,
    params: Mapping[str, Any] | None = None,
    keep: bool = False,
) -> FitResult:
    """Fit on observations with ts <= window.end, issue times from window.start; with
    `keep`, the result holds the rows it was fitted on (the backtest refits on them)."""
    spec, places, seed = data.spec, data.places, window.seed
    obs = cut_observations(data.obs, window.end)
    blocks = fit_blocks(window.start, window.end, spec.horizon)
    budget = block_budgets(window.max_rows)
    built = {}
    for name, (a, b) in blocks.items():
        # Targets must stay inside the block: cut the observations at its end + H.
        cut = cut_observations(obs, b + dt.timedelta(hours=spec.horizon))
        built[name] = examples(cut, spec, a, b, places, budget[name], seed, data.as_issued)
    fit = fit_examples(built, spec, blocks, params)
    if keep:
        fit.examples = built
    return fit


def fit_examples(
    built: Mapping[str, Examples],
    spec: FeatureSpec,
    blocks: Mapping[str, tuple[dt.datetime, dt.datetime]],
    params: Mapping[str, Any] | None = None,
) -> FitResult:
    """The model fitted on built fit rows, early-stopped on the validation rows and its
    intervals and combination calibrated on the calibration rows (`fit_model`'s second
    half: the backtest calls it on rows it already has)."""
    t0 = time.monotonic()
    model = ForecastModel(spec.columns(), spec.horizon, {**DEFAULT_PARAMS, **(params or {})})
    X, y, _ = built["fit"]
    Xv, yv, _ = built["validation"]
    if len(X) == 0 or len(Xv) == 0:
        raise NotEnoughHistory(
            "not enough observed history in the training window to fit a model: ingest "
            "more, or train at a later as_of",
            "as_of",
        )
    model.fit(X, y, Xv, yv)
    Xc, yc, kc = built["calibration"]
    model.calibrate(Xc, yc, kc["target_ts"])
    return FitResult(
        model,
        {k: len(v[1]) for k, v in built.items()},
        {k: [a.isoformat(), b.isoformat()] for k, (a, b) in blocks.items()},
        seconds=time.monotonic() - t0,
    )


def holdout_metrics(
    model: ForecastModel, data: TrainingData, window: IssueWindow, as_served: bool = True
) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    """Metrics of `model` and the baselines for issue times in the window, with the inputs
    it is served (`as_served`): the forecasts as issued, even for a model trained on the
    observed weather (the study setting), so the gate never scores an oracle; and the
    median as served, combined online with the baselines (`served`)."""
    return score_examples(model, *holdout_examples(data, window, as_served))


def holdout_examples(data: TrainingData, window: IssueWindow, as_served: bool = True) -> Examples:
    """The rows `holdout_metrics` scores: with the forecasts as issued when `as_served`."""
    spec = data.spec
    if as_served and spec.oracle_weather():
        spec = replace(spec, weather="as-issued")
    return examples(
        data.obs,
        spec,
        window.start,
        window.end,
        data.places,
        window.max_rows,
        window.seed,
        data.as_issued,
    )


def score_examples(
    model: ForecastModel, X: pd.DataFrame, y: np.ndarray, keys: pd.DataFrame
) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    """Metrics of `model` as served and of the baselines on built rows (`holdout_metrics`'
    second half: the backtest calls it on rows it already has)."""
    if len(X) == 0:
        raise ValueError("no evaluation rows in the holdout window")
    q = served(model, X, y, keys)
    return evaluate(keys, q), keys, q


def served(model: ForecastModel, X: pd.DataFrame, y: np.ndarray, keys: pd.DataFrame) -> np.ndarray:
    """The forecasts of rows already observed as predict would have served them: the
    combination with the baselines starts from the version's calibration weights and is
    stepped before each issue hour by the hours verified by then
    (`common.forecasting.combination.online_weights`)."""
    if model.combination is None:
        return model.predict(X)
    weights = online_weights(
        model.expert_change(X), X, y, keys["issued_at"], keys["target_ts"], model.combination
    )
    return model.predict(X, weights=weights)


def cut_observations(obs: Observations, end: dt.datetime) -> Observations:
    """The observations with ts <= end (a frame filtered, a source cut)."""
    if isinstance(obs, pd.DataFrame):
        return obs[pd.to_datetime(obs["ts"], utc=True) <= pd.Timestamp(end)]
    return obs.until(end)


def examples(
    obs: Observations,
    spec: FeatureSpec,
    start: dt.datetime,
    end: dt.datetime,
    places: pd.DataFrame,
    max_rows: int,
    seed: int = 0,
    as_issued: AsIssuedInputs | None = None,
) -> Examples:
    """(X, y, keys) for issue times in [start, end]: from the whole frame when it is in
    memory, else the sampled selection from the source (same contract). Forecasts as
    issued are read from `as_issued` for the target hours of those issue times."""
    if isinstance(obs, pd.DataFrame):
        ids = sorted(obs["location_id"].astype(str).unique()) if len(obs) else []
        rows = read_as_issued(
            as_issued,
            spec,
            start - dt.timedelta(hours=1),
            end + dt.timedelta(hours=spec.horizon),
            ids,
        )
        return training_examples(obs, spec, start, end, places, max_rows, seed, rows)
    return sampled_examples(obs, spec, start, end, places, max_rows, seed, as_issued=as_issued)
