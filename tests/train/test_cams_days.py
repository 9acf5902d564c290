"""Train's check that CAMS forecasts have accrued reads air_quality_forecast_days (a row per
landing and issue day), not the forecasts' history, and answers what reading the history
answered: checked on every backend against the history query itself, for forecasts landed
live and by a backfill, with values missing or out of range, for rows landed before the
summary existed (seeded once, then not read again), and on a retried delivery."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from common.core.config import Settings
from common.ingest.writes import Provenance, write_forecasts, write_past_forecasts
from common.sources import Window
from common.train.inputs import CAMS_MIN_DAYS, cams_accrued
from common.warehouse import Warehouse, open_warehouse

T = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


def _history(wh: Warehouse, target: str, as_of: dt.datetime) -> tuple[object, int]:
    """What the check read before: every partition of air_quality_forecasts."""
    got = wh.query(
        f"SELECT MIN(issued_at) AS first, COUNT(DISTINCT DATE(issued_at)) AS days "
        f"FROM air_quality_forecasts WHERE issued_at <= @as_of AND {target} IS NOT NULL",
        {"as_of": as_of},
    )
    first = got["first"].iloc[0]
    return (None if pd.isna(first) else pd.Timestamp(first)), int(got["days"].iloc[0])


def _forecast(issued: dt.datetime, pm2_5: float | None, ozone: float | None = 30.0):
    """One place's CAMS forecast issued at `issued`, for the next 3 hours."""
    return pd.DataFrame(
        {
            "location_id": "a",
            "issued_at": issued,
            "ts": [issued + k * H for k in (1, 2, 3)],
            "pm2_5": pm2_5,
            "ozone": ozone,
        }
    )


def _land(wh: Warehouse, issued: dt.datetime, frame: pd.DataFrame, run: str) -> int:
    """A live ingest's landing at `issued` (its delivery key, as the job gives it)."""
    key = f"live|{issued}"
    landed = Provenance("synthetic", run, issued, lambda t, f: wh.append(t, f, key=key))
    return write_forecasts(wh, "air_quality_forecasts", frame, landed, issued)


def _accrued(wh: Warehouse, target: str, as_of: dt.datetime) -> dict:
    return cams_accrued(wh, target, as_of, as_of - 7 * D, run_id="train-test")[1]


def _seeds(wh: Warehouse) -> pd.DataFrame:
    return wh.query(
        "SELECT variable, kind, COUNT(*) AS n FROM air_quality_forecast_days "
        "WHERE kind != 'landed' GROUP BY variable, kind ORDER BY variable, kind"
    )


def test_the_accrual_is_read_from_the_issue_days_and_agrees_with_the_history(
    settings: Settings,
):
    wh = open_warehouse(settings)
    wh.ensure_schema()
    # Landed before the summary existed (as the earlier code wrote them): 10 days of one
    # issue a day from T - 60 days, pm2_5 on each; these only a seed can know of.
    old = pd.concat([_forecast(T - 60 * D + k * D + 6 * H, 12.0) for k in range(10)])
    wh.append(
        "air_quality_forecasts",
        old.assign(provider="cams", source="synthetic", run_id="old", ingested_at=T - 50 * D),
    )
    # Landed by this code: live issues every 12 h over the last 40 days, pm2_5 missing on
    # every fourth one and out of range (NULLed) on every tenth; ozone on all of them.
    for k in range(80):
        issued = T - 40 * D + k * 12 * H
        pm = None if k % 4 == 0 else (5000.0 if k % 10 == 5 else 20.0)
        assert _land(wh, issued, _forecast(issued, pm), f"ing-{k}") == 3
    # a retried delivery of the last issue writes nothing again
    last = T - 40 * D + 79 * 12 * H
    assert _land(wh, last, _forecast(last, 20.0), "ing-retry") == 0
    # a backfill of past forecasts for days in between, issued the day before each hour
    past = pd.concat([_forecast(T - 45 * D + k * D, 9.0) for k in range(3)])
    window = Window(T - 45 * D, T - 42 * D, T - 42 * D, live=False)
    landed = Provenance("synthetic", "backfill", T, lambda t, f: wh.append(t, f, key="past"))
    assert write_past_forecasts(wh, "air_quality_forecasts", past, landed, window) == 9

    for target in ("pm2_5", "ozone"):
        for as_of in (T - 61 * D, T - 55 * D, T - 41 * D, T - 20 * D + 7 * H, T):
            first, days = _history(wh, target, as_of)
            got = _accrued(wh, target, as_of)
            if first is None:
                assert got["reason"] == "no CAMS forecast of the target kept yet"
                continue
            assert (pd.Timestamp(got["first_issued"]), got["days"]) == (first, days), (
                target,
                as_of,
            )
    # each target seeded once, from every day the table held then (the seed ran after
    # this code had landed its own: those days are said twice, which changes no answer)
    everything = T + 400 * D
    assert _seeds(wh).values.tolist() == [
        ["ozone", "seed", _history(wh, "ozone", everything)[1]],
        ["ozone", "seeded", 1],
        ["pm2_5", "seed", _history(wh, "pm2_5", everything)[1]],
        ["pm2_5", "seeded", 1],
    ]
    assert _history(wh, "ozone", T)[1] == 10 + 40 + 3  # ozone was issued every day
    assert _history(wh, "pm2_5", T)[1] == 10 + 36 + 3  # pm2_5 missing both times on 4 days
    final = _accrued(wh, "pm2_5", T)
    assert final["days_since_first"] == 60 and final["used"] is True  # 49 of 60 days


def test_a_target_never_forecast_is_reported_so_and_the_seed_is_not_repeated(
    settings: Settings,
):
    wh = open_warehouse(settings)
    wh.ensure_schema()
    assert _accrued(wh, "pm2_5", T)["reason"] == "no CAMS forecast of the target kept yet"
    assert _seeds(wh).values.tolist() == [["pm2_5", "seeded", 1]]
    # forecasts landing after the seed are counted from their own days, the seed not re-run
    for k in range(CAMS_MIN_DAYS + 10):
        issued = T - (CAMS_MIN_DAYS + 10) * D + k * D
        _land(wh, issued, _forecast(issued, 15.0), f"ing-{k}")
    got = _accrued(wh, "pm2_5", T)
    assert got["used"] is True and got["days"] == CAMS_MIN_DAYS + 10
    assert (pd.Timestamp(got["first_issued"]), got["days"]) == _history(wh, "pm2_5", T)
    assert _seeds(wh).values.tolist() == [["pm2_5", "seeded", 1]]
