"""What a version says about itself (its metadata.json) and the drift reference it stores."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import common
from common.core.timeutil import parse_time
from common.forecasting.features import grid_columns
from common.forecasting.training import TrainingData
from common.forecasting.versions import (
    CamsInput,
    DataRecord,
    DriftReferences,
    HoldoutMetrics,
    Metrics,
    ModelMetadata,
    ModelState,
    StoredSpec,
    TuningChoice,
    WeatherCard,
)
from common.monitoring import drift
from common.monitoring.drift import reference as drift_reference
from common.monitoring.thresholds import DRIFT_WINDOW_HOURS, NATURAL_PSI_QUANTILE
from common.train.candidate import Candidate
from common.train.inputs import weather_card
from common.train.observations import WindowSummary, recent, reference_rows
from common.train.plan import TrainPlan

BASELINES = ("persistence", "seasonal_naive", "cams")


def drift_sample(data: TrainingData, end: dt.datetime) -> bytes:
    """The inputs of the window's last drift window, a bounded sample (see drift.py)."""
    since = end - dt.timedelta(hours=DRIFT_WINDOW_HOURS)
    return drift.reference_sample(recent(data.obs, since), grid_columns(data.spec), since)


def version_metadata(
    model_name: str,
    data: TrainingData,
    summary: WindowSummary,
    plan: TrainPlan,
    candidate: Candidate,
    run_id: str,
    tuning: TuningChoice | None = None,
    cams_input: dict[str, Any] | None = None,
) -> ModelMetadata:
    """What a version says about itself: recipe, data, rows, metrics and backtest; which
    weather it trained on (as-issued / none / the observed-oracle study) and whether it
    reads the CAMS forecast (and why). Its gate decision is added once the gate decided."""
    spec, metrics = data.spec, candidate.metrics
    ref_rows = reference_rows(data.obs)
    # decile bins of every input over the training window and of each calendar month of it
    # (drift is measured against them), and how far the window's own weeks are from them
    references = DriftReferences(
        reference=drift_reference(ref_rows, grid_columns(spec)),
        reference_by_month=drift.monthly_reference(ref_rows, grid_columns(spec)),
    )
    card = weather_card(spec, candidate.holdout[0] if candidate.holdout else None)
    return ModelMetadata(
        model_name=model_name,
        version=plan.version,
        created_at=dt.datetime.now(dt.UTC),
        run_id=run_id,
        code_version=code_version(),
        target=spec.target,
        horizon=spec.horizon,
        spec=StoredSpec.model_validate(spec.to_dict()),
        features=spec.columns(),
        weather=WeatherCard.model_validate(card),
        cams_input=None if cams_input is None else CamsInput.model_validate(cams_input),
        params=candidate.model.params,
        tuning=tuning,
        model=ModelState.model_validate(candidate.model.state()),
        data=DataRecord(
            window=(plan.window_start, plan.as_of),
            observations=summary.observations,
            locations=summary.locations,
            fingerprint=plan.fingerprint,
            blocks={k: (parse_time(a), parse_time(b)) for k, (a, b) in candidate.blocks.items()},
            holdout=(plan.holdout.start, plan.holdout.end),
        ),
        rows=candidate.rows,
        metrics=Metrics(holdout=HoldoutMetrics.model_validate(metrics)),
        baselines={b: metrics.get(b) for b in BASELINES},
        backtest=candidate.backtest,
        reference=references.reference,
        reference_by_month=references.reference_by_month,
        reference_natural=drift.natural_psi(
            ref_rows, references, DRIFT_WINDOW_HOURS, NATURAL_PSI_QUANTILE
        ),
    )


def code_version() -> str:
    """The package version plus the deployed revision or commit when the platform says it."""
    rev = os.environ.get("K_REVISION") or os.environ.get("AIRCAST_CODE_VERSION")
    return f"{common.__version__}+{rev}" if rev else common.__version__
