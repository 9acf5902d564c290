"""Row checks: every bad row is quarantined with a reason; good rows of the batch land."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from common.ingest.validation import validate
from common.sources.base import Window

AS_OF = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
WINDOW = Window(AS_OF - dt.timedelta(hours=6), AS_OF, AS_OF, live=True)


def row(hour: int | str | None, pm=10.0, loc="a", **extra) -> dict:
    ts = hour if not isinstance(hour, int) else (AS_OF - dt.timedelta(hours=hour)).isoformat()
    return {"location_id": loc, "ts": ts, "pm2_5": pm, "payload": None, **extra}


def reasons(checked) -> list[str]:
    return sorted(r.reason for r in checked.rejected)


def test_good_rows_pass_and_bad_rows_are_quarantined_with_reasons():
    frame = pd.DataFrame(
        [
            row(0), row(1, pm=None), row(2, pm=-5.0), row(3, pm=99999.0), row(4, pm="n/a"),
            row("2024-03-01T10:30:00Z"), row("yesterday"), row(None), row(0, loc=None),
            row(-2), row(5, pm=float("nan"), temperature_2m=12.0), row(6, wind_direction_10m=400.0),
            row(8, pm=float("inf")),
        ]
    )  # fmt: skip
    checked = validate(frame, WINDOW)
    assert sorted(checked.accepted["ts"].dt.hour) == [7, 12]
    assert reasons(checked) == sorted(
        [
            "pm2_5=-5 outside physical range [0, 1500] µg/m³",
            "pm2_5=99999 outside physical range [0, 1500] µg/m³",
            "pm2_5: not a number",
            "timestamp not on the hour",
            "missing or unparseable timestamp",
            "missing or unparseable timestamp",
            "missing location_id",
            "timestamp after as_of",
            "wind_direction_10m=400 outside physical range [0, 360] °",
            "pm2_5=inf outside physical range [0, 1500] µg/m³",
        ]
    )
    assert checked.empty_rows == 1  # row(1): no value at all is not an observation
    assert all(r.payload for r in checked.rejected)


def test_duplicates_in_a_batch_keep_the_first_and_say_whether_they_differ():
    frame = pd.DataFrame([row(1), row(1), row(1, pm=11.0), row(2)])
    checked = validate(frame, WINDOW)
    assert len(checked.accepted) == 2
    assert checked.accepted.loc[checked.accepted["ts"].dt.hour == 11, "pm2_5"].item() == 10.0
    assert reasons(checked) == [
        "duplicate (location_id, ts) in batch",
        "duplicate (location_id, ts) in batch with different values",
    ]


def test_out_of_order_rows_are_fine_and_rows_outside_the_window_are_dropped():
    frame = pd.DataFrame([row(3), row(0), row(2), row(30)])
    checked = validate(frame, WINDOW)
    assert len(checked.accepted) == 3 and checked.outside_window == 1 and not checked.rejected
    assert np.isfinite(checked.accepted["pm2_5"]).all()
