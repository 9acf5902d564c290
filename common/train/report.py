"""What a candidate shows besides its holdout score: rolling-origin backtest folds (they
inform, the gate decides on the holdout) and the holdout report image."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from common.forecasting.evaluation import ratio
from common.forecasting.training import IssueWindow, TrainingData, fit_model, holdout_metrics
from common.forecasting.versions import BacktestFold
from common.train.plan import HOLDOUT_ROWS


def backtest(
    data: TrainingData,
    history: IssueWindow,
    block: dt.timedelta,
    folds: int,
    params: dict[str, Any],
) -> list[BacktestFold]:
    """Rolling-origin folds before the holdout: refit up to each origin, test the next block.

    `history` spans the issue times before the holdout with the candidate's row budget;
    each fold is refitted on a quarter of it.
    """
    out: list[BacktestFold] = []
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
            out.append(BacktestFold(origin=origin, skipped=str(exc)))
            continue
        out.append(
            BacktestFold(
                origin=origin,
                rows=m["rows"],
                mae=m["model"]["mae"],
                rmse=m["model"]["rmse"],
                coverage=m["model"]["coverage"],
                persistence_mae=m["persistence"]["mae"],
                seasonal_naive_mae=m["seasonal_naive"]["mae"],
                ratio_persistence=ratio(m),
            )
        )
    return out


def backtest_report(keys: pd.DataFrame, q: Any, metrics: dict[str, Any], version: str) -> bytes:
    """The holdout's forecasts against what was observed, as a PNG stored with the version."""
    from common.forecasting.report import backtest_png

    return backtest_png(keys, q, metrics, version)
