"""Interval offsets that adapt to what was verified: p10/p90 that keep covering when the
weather regime moves away from the one the interval was calibrated on.

Split conformal calibrates each version's interval once, on the last block of its training
window. In a season or a run of episodes unlike that block the interval misses for days:
over a Beijing test year the served p10..p90 covers 0.77-0.82 at every horizon, yet only 5
of its 26 two-week windows stay within 0.75-0.85 at every horizon (docs/benchmarks.md).
Adaptive conformal inference (Gibbs & Candes, 2021) corrects what is served from what has
since been observed: per target, horizon and tail an offset (log units, added outside the
bound: positive widens) moves by eta x (the share of the forecasts verified in an hour that
fell beyond that bound - the bound's nominal 10 %). With eta 0.005 (chosen by the interval
score on the year before) 13 of the 26 windows held, coverage by horizon went to 0.79-0.80
and the interval score stayed within 0.3 %.

Predict steps the offsets once per run and target from the forecasts whose hour has been
observed, stores them by issue time and serves them (batch rows, the snapshot and the api's
online predictions alike). The offsets belong to the target, not to a model version: they
describe how the current period differs from calibration, which outlives a retrain.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.core.timeutil import iso
from common.forecasting.combination import Weights

TAIL = 0.1  # each bound's nominal miss rate (p10 / p90)
MAX_OFFSET = 1.0  # log units: a bound moves by at most a factor e either way
VERIFY_LAG_H = 2  # an hour is verified once it is this old, so late observations count
MAX_CATCH_UP_H = 7 * 24  # after a gap in the runs, at most this many hours are verified


def aci_step(offset: Any, share: Any, eta: float) -> Any:
    """Adaptive conformal inference's step of a bound's offset (scalars or arrays): outward
    by eta x (the share of its forecasts verified beyond the bound - TAIL), clipped to
    +-MAX_OFFSET. Over T steps the bound's miss share stays within (2 MAX_OFFSET + eta) /
    (eta T) of TAIL, whatever the data (Gibbs & Candes, 2021)."""
    return np.clip(offset + eta * (share - TAIL), -MAX_OFFSET, MAX_OFFSET)


@dataclass(frozen=True)
class Offsets:
    """Per horizon (index h - 1) the log-unit widening of the lower and upper bound, and the
    last target hour whose forecasts went into them (None: nothing verified yet)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    verified_through: dt.datetime | None = None

    @classmethod
    def zero(cls, horizon: int, verified_through: dt.datetime | None = None) -> Offsets:
        return cls((0.0,) * horizon, (0.0,) * horizon, verified_through)

    @property
    def horizon(self) -> int:
        return len(self.lower)

    def at(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lower and upper widening of rows of horizons `h` (0 beyond the stored ones)."""
        k = np.asarray(h, dtype=int) - 1
        ok = (k >= 0) & (k < self.horizon)
        lo, hi = np.zeros(len(k)), np.zeros(len(k))
        if self.horizon:
            lo[ok] = np.asarray(self.lower)[k[ok]]
            hi[ok] = np.asarray(self.upper)[k[ok]]
        return lo, hi

    def step(self, verified: pd.DataFrame, eta: float, through: dt.datetime | None) -> Offsets:
        """The offsets after the verified hours up to `through`, taken in time order.

        `verified` has one row per (target_ts, horizon_h) with `n` forecasts verified and
        `below` / `above` of them outside the served bounds (which carried the offsets of
        their issue time). Each hour moves each horizon's offsets by eta x (miss share -
        TAIL), clipped to +-MAX_OFFSET.
        """
        lo, hi = np.asarray(self.lower, float), np.asarray(self.upper, float)
        if len(verified):
            rows = verified.sort_values(["target_ts", "horizon_h"], kind="stable")
            k = rows["horizon_h"].to_numpy(int) - 1
            n = rows["n"].to_numpy(float)
            keep = (k >= 0) & (k < self.horizon) & (n > 0)
            for col, arr in (("below", lo), ("above", hi)):
                share = rows[col].to_numpy(float)[keep] / n[keep]
                # Hour after hour (the rows are in time order), clipped after each step.
                for kk, s in zip(k[keep], share, strict=True):
                    arr[kk] = aci_step(arr[kk], s, eta)
        return Offsets(tuple(lo.tolist()), tuple(hi.tolist()), through)

    def to_json(self) -> dict[str, Any]:
        through = self.verified_through
        return {
            "verified_through": None if through is None else iso(through),
            "lower": list(self.lower),
            "upper": list(self.upper),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Offsets:
        through = data.get("verified_through")
        return cls(
            tuple(float(v) for v in data["lower"]),
            tuple(float(v) for v in data["upper"]),
            None if through is None else pd.Timestamp(through).to_pydatetime(),
        )

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, horizon: int) -> Offsets:
        """From stored rows (horizon_h, lower_offset, upper_offset, verified_through)."""
        lo, hi = [0.0] * horizon, [0.0] * horizon
        for h, a, b in zip(
            rows["horizon_h"].astype(int), rows["lower_offset"], rows["upper_offset"], strict=True
        ):
            if 1 <= h <= horizon:
                lo[h - 1], hi[h - 1] = float(a), float(b)
        through = pd.to_datetime(rows["verified_through"], utc=True).max() if len(rows) else pd.NaT
        return cls(tuple(lo), tuple(hi), None if pd.isna(through) else through.to_pydatetime())

    def rows(self) -> pd.DataFrame:
        """One row per horizon, the stored form (the caller adds the keys)."""
        return pd.DataFrame(
            {
                "horizon_h": np.arange(1, self.horizon + 1, dtype="int64"),
                "lower_offset": list(self.lower),
                "upper_offset": list(self.upper),
                "verified_through": self.verified_through,
            }
        )


@dataclass(frozen=True)
class Adaptation:
    """What predict publishes for a target's online predictions (`intervals_key`): the
    interval offsets (None when not adapted) and the combination weights with the version
    they were stepped for (`common.forecasting.combination`)."""

    offsets: Offsets | None = None
    weights: Weights | None = None
    model_version: str | None = None

    def weights_for(self, version: str) -> Weights | None:
        """The weights when they were stepped for `version`, else None (the version's own
        start serves: a promotion since the last predict run)."""
        return self.weights if self.model_version == version else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Adaptation:
        combination = data.get("combination")
        return cls(
            Offsets.from_json(data) if "lower" in data else None,
            Weights.from_json(combination) if combination else None,
            data.get("model_version"),
        )
