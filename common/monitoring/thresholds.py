"""The one set of health thresholds: `aircast status`, the status the monitor stores for the
api, and Terraform's alert policies (terraform/thresholds.json, written by
`python -m tools.generate`) all read these numbers, so a local `alert` and a Cloud
Monitoring incident mean the same thing.

Every condition reports one number, `value`, in the unit below; `warn` and `alert` are the
levels at which it turns warn or alert (a value above the level; for `accuracy` the
value is the MAE as served / persistence MAE on the same rows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from common.monitoring.health import State


@dataclass(frozen=True)
class Level:
    unit: str
    warn: float
    alert: float
    description: str

    def state(self, value: float | None) -> State:
        if value is None:
            return "ok"
        if value > self.alert:
            return "alert"
        return "warn" if value > self.warn else "ok"


# Condition name -> levels of its `value`.
LEVELS: dict[str, Level] = {
    "freshness": Level(
        "hours", 3, 12, "largest lag of an active location's newest observation behind as_of"
    ),
    "runs": Level(
        "hours", 2, 6, "hours since the last completed ingest or predict run (the larger)"
    ),
    "model_age": Level("days", 3, 7, "days since the production model's training cut-off"),
    "rejected_share": Level(
        "share", 0.05, 0.2, "largest share of rejected rows of one source over the window"
    ),
    "accuracy": Level(
        "ratio",
        1.0,
        1.1,
        "MAE as served (the combination) / persistence MAE on the same verified rows, of "
        "each target's production version (the largest)",
    ),
    # The textbook 0.1/0.25 PSI levels are for scored populations; a week of hourly weather
    # differs more than that from a training window by its weather regime alone (a healthy
    # synthetic week: largest PSI 0.32, wind direction), so these sit above it. They are a
    # floor: an input whose own training weeks were further apart (one city's weather:
    # dew point up to 4.9 in Beijing) warns above their NATURAL_PSI_QUANTILE and alerts
    # above the largest of them (common.monitoring.drift.natural_psi).
    "drift": Level(
        "psi", 0.4, 0.8, "population stability index of the input furthest beyond its levels"
    ),
    "snapshot": Level("hours", 2, 6, "age of serving/latest.json behind as_of"),
}

# Windows and minimum sample sizes (a condition with fewer rows says so and stays ok).
FRESHNESS_LOOKBACK_DAYS = 7  # a location silent for longer is reported with no newest hour
RUNS_WINDOW_HOURS = 24  # failures counted over this window
REJECTED_WINDOW_HOURS = 24
REJECTED_MIN_ROWS = 20
ACCURACY_WINDOW_HOURS = 72  # verified forecasts with target_ts in (as_of - window, as_of]
ACCURACY_MIN_ROWS = 100
COVERAGE_WARN_BELOW = 0.5  # the p10..p90 band should hold ~80 % of observations
DRIFT_WINDOW_HOURS = 168  # a week of recent serving inputs against the training data
DRIFT_MIN_ROWS = 200
NATURAL_PSI_QUANTILE = 0.95  # of the training weeks' own PSI: above it an input warns
DRIFT_LOCATIONS = 300  # a seeded sample of locations x the window (~50,000 rows): the
# drift check reads what it needs whatever the network's size (12 s -> under 1 s at 100,000)
ADVERSARIAL_AUC_WARN = 0.8  # overall drift: a classifier telling recent from training rows
ADVERSARIAL_SAMPLE = 2000  # rows per side
FAILED_RUNS_ALERT = 0  # failed runs per hour (after the scheduler's retries) above this alert


def as_dict() -> dict[str, Any]:
    """Everything above as plain JSON (what Terraform reads)."""
    return {
        "levels": {name: asdict(level) for name, level in LEVELS.items()},
        "windows": {
            "freshness_lookback_days": FRESHNESS_LOOKBACK_DAYS,
            "runs_window_hours": RUNS_WINDOW_HOURS,
            "rejected_window_hours": REJECTED_WINDOW_HOURS,
            "accuracy_window_hours": ACCURACY_WINDOW_HOURS,
            "drift_window_hours": DRIFT_WINDOW_HOURS,
        },
        "adversarial_auc_warn": ADVERSARIAL_AUC_WARN,
        "failed_runs_alert": FAILED_RUNS_ALERT,
    }
