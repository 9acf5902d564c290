"""Row checks between a source and the warehouse: what fails is quarantined, not lost.

Every row a source returns is either accepted, dropped as a non-observation (outside the
requested window, or no value at all), or rejected with a reason and its raw payload for
`rejected_rows`. Checks: a location id, a parseable UTC timestamp on the hour and not
after as_of, numeric values inside each variable's physical range (common.core.schema), and no
second row for the same (location_id, ts) in one batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from common.core.schema import VARIABLES
from common.sources.base import Rejection, Window, payload_text


@dataclass
class Checked:
    accepted: pd.DataFrame
    rejected: list[Rejection] = field(default_factory=list)
    outside_window: int = 0
    empty_rows: int = 0  # inside the window but without a single value


def validate(frame: pd.DataFrame, window: Window) -> Checked:
    """Split a source's observation rows into accepted rows and rejections."""
    variables = [c for c in frame.columns if c in VARIABLES]
    if frame.empty:
        return Checked(pd.DataFrame(columns=["location_id", "ts", *variables]))
    frame = frame.reset_index(drop=True)
    payload = frame["payload"] if "payload" in frame else pd.Series([None] * len(frame))
    reasons = pd.Series([None] * len(frame), dtype="object")

    def reject(mask: pd.Series, reason: str | pd.Series) -> None:
        todo = mask & reasons.isna()
        if todo.any():
            reasons[todo] = (
                reason.reindex(frame.index)[todo] if isinstance(reason, pd.Series) else reason
            )

    loc = frame["location_id"] if "location_id" in frame else pd.Series([None] * len(frame))
    reject(loc.isna() | (loc.astype(str).str.strip() == ""), "missing location_id")
    ts = _parse_ts(frame["ts"] if "ts" in frame else pd.Series([None] * len(frame)))
    reject(ts.isna(), "missing or unparseable timestamp")
    reject(ts.notna() & (ts != ts.dt.floor("h")), "timestamp not on the hour")
    reject(ts > pd.Timestamp(window.as_of), "timestamp after as_of")

    values = _values(frame, variables, reject)
    key = pd.DataFrame({"location_id": loc.astype("object"), "ts": ts})
    _reject_duplicates(key, values, reasons)

    rejected = [
        Rejection(
            _none(loc[i]),
            None if pd.isna(ts[i]) else ts[i],
            reasons[i],
            payload[i] if payload[i] is not None else payload_text(_row(frame, i)),
        )
        for i in reasons[reasons.notna()].index
    ]
    ok = reasons.isna()
    inside = ok & (ts >= pd.Timestamp(window.start)) & (ts <= pd.Timestamp(window.end))
    has_value = values.notna().any(axis=1) if variables else pd.Series(False, index=frame.index)
    keep = inside & has_value
    accepted = pd.concat([key, values], axis=1)[keep].reset_index(drop=True)
    return Checked(
        accepted,
        rejected,
        outside_window=int((ok & ~inside).sum()),
        empty_rows=int((inside & ~has_value).sum()),
    )


def _values(
    frame: pd.DataFrame,
    variables: list[str],
    reject: Callable[[pd.Series, str | pd.Series], None],
) -> pd.DataFrame:
    """The variables' columns as floats; text among the numbers and values outside their
    physical range are passed to `reject` with the reason."""
    values = pd.DataFrame(index=frame.index)
    for name in variables:
        raw = frame[name]
        if pd.api.types.is_numeric_dtype(raw):
            num = raw.astype("float64")
        else:  # text among the numbers: quarantined, not silently made missing
            num = pd.to_numeric(raw, errors="coerce").astype("float64")
            reject(raw.notna() & num.isna(), f"{name}: not a number")
        # NaN is a missing value; ±inf is absurd and fails the range check below.
        v = VARIABLES[name]
        bad = num.notna() & ((num < v.low) | (num > v.high))
        if bad.any():  # build the messages only for the rows that need one
            message = f"{name}={{:g}} outside physical range [{v.low:g}, {v.high:g}] {v.unit}"
            reject(bad, num[bad].map(message.format))
        values[name] = num
    return values


def _reject_duplicates(key: pd.DataFrame, values: pd.DataFrame, reasons: pd.Series) -> None:
    """Keep the first row of a (location_id, ts) not yet rejected; give the later ones their
    reason in `reasons`."""
    candidates = key[reasons.isna()]
    dup = candidates.duplicated(keep="first")
    if dup.any():  # keep the first row of a key; later ones are quarantined
        firsts = candidates[~dup]
        first_of = dict(
            zip(zip(firsts["location_id"], firsts["ts"], strict=True), firsts.index, strict=True)
        )
        for i in candidates.index[dup.to_numpy()]:
            j = first_of[(key.at[i, "location_id"], key.at[i, "ts"])]
            same = values.loc[i].equals(values.loc[j])
            reasons[i] = "duplicate (location_id, ts) in batch" + (
                "" if same else " with different values"
            )


def _parse_ts(raw: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
    return parsed.astype("datetime64[us, UTC]")


def _none(value: object) -> str | None:
    return None if _blank(value) else str(value)


def _row(frame: pd.DataFrame, i: int) -> dict:
    """A parsed row as the payload of a rejection, when the source kept no raw input."""
    return {k: v for k, v in frame.loc[i].items() if k != "payload" and not _blank(v)}


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
