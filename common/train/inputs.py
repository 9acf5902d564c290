"""The forecasts as issued a training run reads, and what its model card says of them.

Weather at the target hours: with AIRCAST_FUTURE_WEATHER, training places, for each issue
time, the newest weather forecast issued at or before it (`common.forecasting.as_issued`),
from every kind the warehouse keeps (the hourly ingest's, and the backfills from
Open-Meteo's Previous Runs and Historical Forecast APIs); rows with none have it missing.
Observed weather at the target hours is used only when AIRCAST_TRAIN_WEATHER names the
oracle study.

CAMS: its forecasts as issued are not archived by Open-Meteo, so they accrue from the
hourly ingest on. The model reads the CAMS forecast of its target (`f_cams`) once enough
has accrued (`cams_accrued`): issued on at least CAMS_MIN_SHARE of the days since the
first one, and that first one at least CAMS_MIN_DAYS before the holdout (so the fit has
four weeks of rows with it and the whole holdout has it). The candidate is then gated as
any other, on the same holdout rows as production: the CAMS input reaches production
only when the model with it beats production beyond the noise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from common.core.config import Settings
from common.core.schema import POLLUTANTS
from common.forecasting.as_issued import AsIssuedInputs, WarehouseSource
from common.forecasting.features import FeatureSpec
from common.warehouse.base import Warehouse

CAMS_MIN_DAYS = 28  # days of CAMS forecasts before the holdout
CAMS_MIN_SHARE = 0.8  # of the days since the first CAMS forecast, with one issued

NOTES = {
    "as-issued": "The target-hour weather of every training row is the newest weather "
    "forecast issued at or before its issue time (the rule predict uses); rows with none "
    "have it missing. `weather.kinds` gives the share of holdout rows by kind: as-issued "
    "(hourly ingest), previous-runs (Open-Meteo, issued 1-7 days before), "
    "historical-forecast (stitched first hours of each run: closer to an analysis), none.",
    "observed-oracle": "STUDY SETTING: training rows use the observed weather at the target "
    "hour (an oracle no deployment has); predict uses forecasts, so the model meets "
    "forecast error only in production.",
    "none": "No weather after the issue time is used.",
}


def spec_for(
    settings: Settings,
    target: str,
    warehouse: Warehouse,
    as_of: dt.datetime,
    run_id: str = "train",
) -> tuple[FeatureSpec, dict[str, Any]]:
    """The feature recipe of this run's candidate for `target`, and why CAMS is (not) in it."""
    holdout_start = as_of - dt.timedelta(hours=settings.horizon, days=settings.train_holdout_days)
    cams, why = False, {"used": False, "reason": "AIRCAST_CAMS_INPUT is off"}
    if settings.cams_input:
        cams, why = cams_accrued(warehouse, target, as_of, holdout_start, run_id)
    spec = FeatureSpec(
        target,
        settings.horizon,
        settings.future_weather,
        weather=settings.train_weather,
        cams=cams,
    )
    return spec, why


def cams_accrued(
    warehouse: Warehouse,
    target: str,
    as_of: dt.datetime,
    holdout_start: dt.datetime,
    run_id: str = "train",
) -> tuple[bool, dict[str, Any]]:
    """Whether enough CAMS forecasts of `target` have accrued to train on (module doc).

    Read from air_quality_forecast_days (a row per issue day, written as forecasts land),
    not from the forecasts' history; the first run to find the target not yet seeded
    summarises the rows landed before that table into it once (`seed_issue_days`)."""
    if target not in POLLUTANTS:
        return False, {"used": False, "reason": f"CAMS does not forecast {target}"}
    got = _issue_days(warehouse, target, as_of)
    seeded = got["seeded"].iloc[0]  # NULL (no row) or 0: not seeded
    if pd.isna(seeded) or not int(seeded):
        seed_issue_days(warehouse, target, run_id)
        got = _issue_days(warehouse, target, as_of)
    first = got["first"].iloc[0] if len(got) else None
    if first is None or pd.isna(first):
        return False, {"used": False, "reason": "no CAMS forecast of the target kept yet"}
    first = pd.Timestamp(first).to_pydatetime()
    days = int(got["days"].iloc[0])
    span = max((as_of - first).days + 1, 1)
    info = {"first_issued": first.isoformat(), "days": days, "days_since_first": span}
    if holdout_start - first < dt.timedelta(days=CAMS_MIN_DAYS):
        need = first + dt.timedelta(days=CAMS_MIN_DAYS)
        reason = (
            f"CAMS forecasts since {first:%Y-%m-%d}: used once the holdout starts after "
            f"{need:%Y-%m-%d}"
        )
        return False, {**info, "used": False, "reason": reason}
    if days < CAMS_MIN_SHARE * span:
        reason = f"CAMS forecasts on {days} of {span} days (need {CAMS_MIN_SHARE:.0%})"
        return False, {**info, "used": False, "reason": reason}
    return True, {**info, "used": True, "reason": "enough CAMS forecasts have accrued"}


def _issue_days(warehouse: Warehouse, target: str, as_of: dt.datetime) -> pd.DataFrame:
    """The first issue time at or before as_of, the UTC days with one, and whether the
    target's seed is complete: the same answer as reading air_quality_forecasts' rows
    issued by as_of with a value of the target (its first issued_at and distinct
    DATE(issued_at)), from one row per landing and day."""
    return warehouse.query(
        "SELECT MIN(CASE WHEN kind != 'seeded' THEN first_issued END) AS first, "
        "COUNT(DISTINCT CASE WHEN kind != 'seeded' THEN day END) AS days, "
        "SUM(CASE WHEN kind = 'seeded' THEN 1 ELSE 0 END) AS seeded "
        "FROM air_quality_forecast_days WHERE variable = @target "
        "AND (first_issued <= @as_of OR kind = 'seeded')",
        {"target": target, "as_of": as_of},
    )


def seed_issue_days(warehouse: Warehouse, target: str, run_id: str) -> int:
    """Summarise the target's forecasts already in air_quality_forecasts into
    air_quality_forecast_days (kind seed), then mark the target seeded: one read of the
    table's history, once (again only after the seeded row's partition expires, when a
    second seed repeats days already there, which changes no answer). Rows landing
    meanwhile write their own days."""
    now = dt.datetime.now(dt.UTC)
    days = warehouse.query(
        f"SELECT DATE(issued_at) AS day, MIN(issued_at) AS first_issued, COUNT(*) AS n "
        f"FROM air_quality_forecasts WHERE {target} IS NOT NULL GROUP BY DATE(issued_at)"
    )
    rows = pd.DataFrame(
        {
            "day": pd.to_datetime(days["day"]).dt.tz_localize(dt.UTC),
            "variable": target,
            "first_issued": pd.to_datetime(days["first_issued"], utc=True),
            "rows": days["n"].astype("int64"),
            "kind": "seed",
        }
    )
    seeded = pd.DataFrame(
        {
            "day": [pd.Timestamp(now).floor("D")],
            "variable": target,
            "first_issued": now,
            "rows": 0,
            "kind": "seeded",
        }
    )
    frame = pd.concat([rows, seeded], ignore_index=True).assign(run_id=run_id, created_at=now)
    return warehouse.append("air_quality_forecast_days", frame)


def as_issued_inputs(warehouse: Warehouse, spec: FeatureSpec, as_of: dt.datetime) -> AsIssuedInputs:
    """Where the run reads forecasts as issued: the warehouse, nothing issued after as_of."""
    return AsIssuedInputs(
        weather=WarehouseSource(warehouse, "weather_forecasts", spec.horizon, as_of),
        cams=WarehouseSource(warehouse, "air_quality_forecasts", spec.horizon, as_of),
    )


def weather_card(spec: FeatureSpec, keys: pd.DataFrame | None) -> dict[str, Any]:
    """What the model card says of the weather it trained on: the mode, a note, and (when
    the holdout rows are at hand) the share of those rows by the kind of weather placed
    (the holdout is scored as served, with forecasts as issued, whatever the mode)."""
    mode = spec.weather_used()
    card: dict[str, Any] = {"trained_on": mode, "note": NOTES[mode]}
    if keys is not None and "weather_kind" in keys and mode != "none":
        shares = keys["weather_kind"].astype(str).value_counts(normalize=True)
        card["kinds"] = {str(k): round(float(v), 4) for k, v in shares.sort_index().items()}
    return card
