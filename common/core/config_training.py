"""The training settings: the window, the row budget, the holdout and backtest, the
weather the model learns from, the promotion gate and the tuning budget. One group of
`common.core.config.Settings`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.core.config_section import Section
from common.core.schema import TRAIN_WINDOW_MAX_DAYS


class TrainingSettings(Section):
    """How a model version is trained and promoted."""

    # --- training ------------------------------------------------------------------------
    train_window_days: int = Field(
        1095,
        ge=7,
        le=TRAIN_WINDOW_MAX_DAYS,
        description="Train on observations of this many days up to as_of (raw observations "
        "are kept a little longer, see docs/data.md).",
    )
    train_max_rows: int = Field(
        500_000,
        ge=1_000,
        le=20_000_000,
        description="Row budget of the fit (issue times subsampled to fit it).",
    )
    train_holdout_days: int = Field(
        7, ge=1, le=365, description="Issue times of the last days held out for the gate."
    )
    train_backtest_folds: int = Field(
        2,
        ge=0,
        le=12,
        description="Earlier rolling-origin folds, each refit on a quarter budget of the "
        "candidate's own rows (no new reads); run only while the run's deadline leaves room, "
        "else recorded as skipped. Reported in the version's metadata; the gate does not "
        "read them.",
    )
    train_threads: int = Field(2, ge=1, le=64, description="XGBoost threads.")
    future_weather: bool = Field(
        False,
        description="Use weather forecasts for the target hour (needs a source that "
        "provides them, e.g. open-meteo). Training uses, for each issue time, the newest "
        "forecast issued at or before it in weather_forecasts (the rule predict uses), "
        "missing where none was kept.",
    )
    train_weather: Literal["as-issued", "observed-oracle"] = Field(
        "as-issued",
        description="Training's target-hour weather when AIRCAST_FUTURE_WEATHER is on: "
        "forecasts as issued, or `observed-oracle`, the observed weather (a study of a "
        "perfect forecast, which no deployment has: the model then meets forecast error "
        "only in production). The model card says which.",
    )
    cams_input: bool = Field(
        True,
        description="Give the model the CAMS forecast of its target (air_quality_forecasts, "
        "as issued) once enough has accrued: issued on most days since at least 28 days "
        "before the holdout (see docs/architecture.md); the gate then decides on the "
        "holdout as for any candidate.",
    )
    gate_margin: float = Field(
        0.05, ge=0, lt=1, description="Required MAE improvement over seasonal naive (share)."
    )
    gate_tolerance: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="MAE loss against production (share of its MAE) that the lower end of "
        "the bootstrap interval must exceed to reject a candidate; between that and a "
        "significant gain, production is kept (no evidence of a difference, or a loss "
        "within this tolerance).",
    )
    gate_bootstrap_samples: int = Field(
        1000,
        ge=100,
        le=100_000,
        description="Block-bootstrap resamples (over issue days) of the paired holdout "
        "errors against production.",
    )
    gate_confidence: float = Field(
        0.95, gt=0.5, lt=1, description="Confidence of the gate's bootstrap interval."
    )
    tune_budget_seconds: float = Field(
        900.0,
        ge=1,
        le=3600,
        description="Wall-time budget of a parameter search (no trial starts after it).",
    )
    tune_max_trials: int = Field(
        20, ge=1, le=500, description="Most parameter sets one search tries."
    )
