"""What a candidate shows besides its holdout score: rolling-origin backtest folds (they
inform, the gate decides on the holdout) and the holdout report image.

The folds refit on rows the candidate already built, not on new reads of the warehouse.
The candidate's fit, validation and calibration rows are one seeded sample of the issue
pairs before the holdout, drawn alike over the whole history (the blocks' budgets follow
their spans: `block_budgets`). A fold at origin o takes from them the rows of its own
fit, validation and calibration blocks (`fit_blocks` of [history.start, o]: every target
hour <= o), thinned to a quarter of the row budget, and is tested on the rows whose issue
times are in [o, o + block] (targets <= o + block + H <= the holdout's start). A row's
features read nothing after its issue time and its target is at most H later, so a fold
sees nothing after its origin whatever else the candidate read; what the candidate's
sample depends on beyond the origin is how many rows were drawn (the window's counts),
never a value. The test blocks hold the calibration block's density of rows (an eighth of
the budget over a tenth of the history), fewer than the holdout's: each fold records its
rows. With the oracle weather study the candidate's rows carry observed weather, which
the holdout never scores, so there each fold's test block is read as the holdout is.

The folds are the run's optional work: a fold starts only when the run's deadline (its
function's timeout, `common.core.deploy`) leaves room for it and for what the run does
after the folds; else it is recorded as skipped with the reason. The gate never reads
them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.core.logs import event, get_logger
from common.forecasting.evaluation import ratio
from common.forecasting.training import (
    Examples,
    IssueWindow,
    TrainingData,
    block_budgets,
    fit_blocks,
    fit_examples,
    holdout_metrics,
    score_examples,
)
from common.forecasting.versions import BacktestFold
from common.train.plan import HOLDOUT_ROWS

FOLD_SHARE = 4  # a fold refits on 1 / FOLD_SHARE of the candidate's row budget
log = get_logger(__name__)


@dataclass(frozen=True)
class FoldTime:
    """When the folds may run: a fold starts only if, at its start, `deadline` (a
    time.monotonic() value) is at least its estimated seconds plus `reserve` away."""

    deadline: float
    reserve: float  # seconds the run needs after the folds
    estimate: float  # seconds a fold is expected to take until one has been timed


def backtest(
    data: TrainingData,
    rows: Mapping[str, Examples],
    history: IssueWindow,
    block: dt.timedelta,
    folds: int,
    params: dict[str, Any],
    clock: FoldTime | None = None,
) -> list[BacktestFold]:
    """Rolling-origin folds before the holdout, refitted on the candidate's `rows` (its
    fit, validation and calibration examples) up to each origin, each tested on the next
    block (module docstring); a fold that would not end within `clock` is skipped."""
    out: list[BacktestFold] = []
    if folds <= 0 or not rows:
        return out
    spec = data.spec
    H = spec.horizon
    gap = dt.timedelta(hours=H)
    pool = _pool(rows)
    budget = block_budgets(max(history.max_rows // FOLD_SHARE, 1000))
    estimate = clock.estimate if clock else 0.0
    for k in range(folds, 0, -1):
        origin = history.end - k * (block + gap)
        if origin - history.start < dt.timedelta(hours=20 * H):
            continue  # not enough history before this origin
        if clock is not None:
            left = clock.deadline - time.monotonic()
            if left < estimate + clock.reserve:
                why = (
                    f"not run: {left:.0f} s left before the run's deadline, a fold takes "
                    f"~{estimate:.0f} s and the steps after the folds ~{clock.reserve:.0f} s"
                )
                event(
                    log,
                    "backtest fold skipped",
                    logging.WARNING,
                    origin=origin.isoformat(),
                    reason=why,
                )
                out.append(BacktestFold(origin=origin, skipped=why))
                continue
        t0 = time.monotonic()
        try:
            blocks = fit_blocks(history.start, origin, H)
            built = {
                name: _select(pool, a, b, max(budget[name] // H, 1), history.seed)
                for name, (a, b) in blocks.items()
            }
            fit = fit_examples(built, spec, blocks, params)
            end = origin + block
            if spec.oracle_weather():  # scored on the forecasts as issued
                m, _, _ = holdout_metrics(fit.model, data, IssueWindow(origin, end, HOLDOUT_ROWS))
            else:
                m, _, _ = score_examples(fit.model, *_select(pool, origin, end, None, 0))
        except ValueError as exc:
            out.append(BacktestFold(origin=origin, skipped=str(exc)))
            continue
        finally:
            estimate = max(estimate, time.monotonic() - t0)
        out.append(
            BacktestFold(
                origin=origin,
                rows=m["rows"],
                fit_rows=fit.rows["fit"],
                mae=m["model"]["mae"],
                rmse=m["model"]["rmse"],
                coverage=m["model"]["coverage"],
                persistence_mae=m["persistence"]["mae"],
                seasonal_naive_mae=m["seasonal_naive"]["mae"],
                ratio_persistence=ratio(m),
            )
        )
    return out


def _pool(rows: Mapping[str, Examples]) -> Examples:
    """The candidate's rows as one set in time order (its blocks do not overlap)."""
    parts = [rows[name] for name in ("fit", "validation", "calibration") if name in rows]
    X = pd.concat([p[0] for p in parts], ignore_index=True)
    y = np.concatenate([p[1] for p in parts])
    keys = pd.concat([p[2] for p in parts], ignore_index=True)
    return X, y, keys


def _select(
    pool: Examples, start: dt.datetime, end: dt.datetime, pairs: int | None, seed: int
) -> Examples:
    """The pool's rows of issue times in [start, end]; at most `pairs` issue pairs
    (location, issue time: all their horizons), drawn seeded, kept in order."""
    X, y, keys = pool
    issued = pd.to_datetime(keys["issued_at"], utc=True)
    inside = ((issued >= pd.Timestamp(start)) & (issued <= pd.Timestamp(end))).to_numpy()
    idx = np.flatnonzero(inside)
    if pairs is not None and len(idx):
        loc = pd.factorize(keys["location_id"].astype(str).to_numpy()[idx])[0].astype(np.int64)
        hour = issued.dt.tz_localize(None).to_numpy()[idx].astype("datetime64[h]").astype(np.int64)
        uniques, codes = np.unique(loc * 10**7 + (hour - hour.min()), return_inverse=True)
        if len(uniques) > pairs:
            chosen = np.zeros(len(uniques), dtype=bool)
            chosen[np.random.default_rng(seed).choice(len(uniques), pairs, replace=False)] = True
            idx = idx[chosen[codes]]
    return (
        X.iloc[idx].reset_index(drop=True),
        y[idx],
        keys.iloc[idx].reset_index(drop=True),
    )


def backtest_report(keys: pd.DataFrame, q: Any, metrics: dict[str, Any], version: str) -> bytes:
    """The holdout's forecasts against what was observed, as a PNG stored with the version."""
    from common.forecasting.report import backtest_png

    return backtest_png(keys, q, metrics, version)
