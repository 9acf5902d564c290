"""A train run's identity and windows: the version id (as_of, a fingerprint of the data and
the recipe) and the issue times the candidate is fitted on and evaluated on."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from common.core.config import Settings
from common.core.errors import Conflict
from common.core.timeutil import iso
from common.forecasting.features import HISTORY_HOURS, FeatureSpec
from common.forecasting.training import IssueWindow
from common.forecasting.versions import TuningChoice
from common.train.observations import WindowSummary

HOLDOUT_ROWS = 250_000  # fixed, so candidate and production are scored on the same rows


@dataclass(frozen=True)
class TrainPlan:
    """One run's identity and windows, derived from as_of, the settings and the data."""

    as_of: dt.datetime
    window_start: dt.datetime  # observations with ts in (window_start, as_of]
    version: str
    fingerprint: str
    history: IssueWindow  # issue times the candidate is fitted on, with the row budget
    holdout: IssueWindow  # issue times it is evaluated on (targets <= as_of)


def plan_training(
    max_rows: int | None,
    settings: Settings,
    summary: WindowSummary,
    spec: FeatureSpec,
    window_start: dt.datetime,
    as_of: dt.datetime,
    tuning: TuningChoice | None = None,
) -> TrainPlan:
    """The version id and the fit and holdout windows (`max_rows` the request's row budget,
    else AIRCAST_TRAIN_MAX_ROWS); a 409 when history is too short."""
    max_rows = max_rows or settings.train_max_rows
    fp = summary.fingerprint
    parts: list[Any] = [fp, spec.to_dict(), max_rows, settings.train_holdout_days]
    if tuning is not None:  # tuned parameters make another version (untuned ids unchanged)
        parts.append(tuning.params)
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
