"""The served median: the model combined online with the baselines, so that a place or a
period where the model loses to "it stays the same" is served the baseline instead.

Per target and horizon the served median is a convex combination, in log1p units around
the last value (the model's own scale), of the experts in `EXPERTS`: the model's median
change, persistence (no change) and seasonal naive (the value at the same hour a day
before the target, the `seasonal_24` feature). A row where an expert has no value (no
observation a day before) shares its weight among the others.

The weights are those of the exponentially weighted average forecaster with fixed share
(Herbster & Warmuth 1998; Cesa-Bianchi & Lugosi 2006, ch. 2 and 5.2). Each verified hour
brings, per horizon, each expert's mean absolute error in log1p units over the locations
verified, clipped to `LOSS_CAP` (so a loss lies in [0, 1]); log-weights fall by eta times
it, then a share `alpha` of the weight is spread evenly, so an expert that lost for a while
can come back within about 1/alpha hours when the regime changes. Over T verified hours
the average loss of the weights is then at most (ln N + T ln(1/(1 - alpha))) / eta +
eta T / 8 above the best single expert's (`regret_bound`), whatever the data; the combined
median, whose absolute error is convex in the forecast, does at least as well as the
weights' average loss wherever errors stay below the cap.

The defaults follow from that bound and not from a fit to any station: the memory is a
week (`MEMORY_H`), alpha = 1 / MEMORY_H, and eta = sqrt(8 ln N / MEMORY_H), the rate
that minimises the bound over that many hours.

A version starts from weights learned the same way on its calibration block (stored in its
metadata); predict steps them every run from what has since been verified and stores them
by issue time (`common.predict.combination`), like the interval offsets, and the batch
rows, the snapshot and the api's online predictions all serve them through
`ForecastModel.predict`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.core.timeutil import iso

EXPERTS = ("model", "persistence", "seasonal_naive")
LOSS_CAP = 1.0  # log1p units: an error beyond a factor e counts as the worst loss, 1
MEMORY_H = 168  # hours: the span the weights remember (fixed share 1 / MEMORY_H)
ETA = math.sqrt(8 * math.log(len(EXPERTS)) / MEMORY_H)
SHARE = 1.0 / MEMORY_H
MIN_WEIGHT = 1e-6  # keeps every log-weight finite


def regret_bound(hours: int, eta: float = ETA, share: float = SHARE, experts: int = 3) -> float:
    """Bound on (the weights' total loss - the best expert's) over `hours` verified hours,
    losses in [0, 1] (Cesa-Bianchi & Lugosi 2006, Thm 2.2 with the fixed-share term)."""
    return (math.log(experts) + hours * -math.log1p(-share)) / eta + eta * hours / 8


@dataclass(frozen=True)
class Weights:
    """Per horizon (index h - 1) the weight of each expert of `EXPERTS` (rows sum to 1),
    and the last target hour whose forecasts went into them (None: none yet)."""

    weights: tuple[tuple[float, ...], ...]
    verified_through: dt.datetime | None = None

    @classmethod
    def uniform(cls, horizon: int, verified_through: dt.datetime | None = None) -> Weights:
        row = (1.0 / len(EXPERTS),) * len(EXPERTS)
        return cls((row,) * horizon, verified_through)

    @classmethod
    def of(cls, matrix: np.ndarray, verified_through: dt.datetime | None = None) -> Weights:
        m = np.clip(np.asarray(matrix, dtype=float), MIN_WEIGHT, None)
        m = m / m.sum(axis=1, keepdims=True)
        return cls(tuple(tuple(float(v) for v in row) for row in m), verified_through)

    @property
    def horizon(self) -> int:
        return len(self.weights)

    def matrix(self) -> np.ndarray:
        return np.asarray(self.weights, dtype=float).reshape(self.horizon, len(EXPERTS))

    def at(self, h: np.ndarray) -> np.ndarray:
        """(n, N) weights of rows of horizons `h` (uniform beyond the stored ones)."""
        k = np.asarray(h, dtype=int) - 1
        out = np.full((len(k), len(EXPERTS)), 1.0 / len(EXPERTS))
        ok = (k >= 0) & (k < self.horizon)
        if self.horizon:
            out[ok] = self.matrix()[k[ok]]
        return out

    def step(
        self,
        losses: pd.DataFrame,
        through: dt.datetime | None,
        eta: float = ETA,
        share: float = SHARE,
    ) -> Weights:
        """The weights after the verified hours of `losses`, taken in time order.

        `losses` has one row per (target_ts, horizon_h) with a column per expert: its mean
        absolute log1p error over the forecasts verified in that hour (any scale; clipped
        to LOSS_CAP here). Rows of horizons not stored, or with a missing loss, are ignored.
        """
        logw = np.log(self.matrix())
        if len(losses):
            rows = losses.sort_values(["target_ts", "horizon_h"], kind="stable")
            k = rows["horizon_h"].to_numpy(int) - 1
            loss = np.clip(rows[list(EXPERTS)].to_numpy(float), 0.0, LOSS_CAP) / LOSS_CAP
            keep = (k >= 0) & (k < self.horizon) & np.isfinite(loss).all(axis=1)
            for kk, row in zip(k[keep], loss[keep], strict=True):
                logw[kk] = _fixed_share(logw[kk] - eta * row, share)
        return Weights.of(np.exp(logw), through)

    def to_json(self) -> dict[str, Any]:
        through = self.verified_through
        return {
            "experts": list(EXPERTS),
            "verified_through": None if through is None else iso(through),
            "weights": [list(row) for row in self.weights],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Weights:
        names = list(data.get("experts", EXPERTS))
        rows = np.asarray(data["weights"], dtype=float).reshape(-1, len(names))
        matrix = np.column_stack(
            [rows[:, names.index(e)] if e in names else np.zeros(len(rows)) for e in EXPERTS]
        )
        through = data.get("verified_through")
        return cls.of(matrix, None if through is None else pd.Timestamp(through).to_pydatetime())

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, horizon: int) -> Weights:
        """From stored rows (horizon_h, expert, weight, verified_through)."""
        matrix = np.full((horizon, len(EXPERTS)), 1.0 / len(EXPERTS))
        for h, e, w in zip(
            rows["horizon_h"].astype(int), rows["expert"], rows["weight"], strict=True
        ):
            if 1 <= h <= horizon and e in EXPERTS:
                matrix[h - 1, EXPERTS.index(e)] = float(w)
        through = pd.to_datetime(rows["verified_through"], utc=True).max() if len(rows) else None
        if through is None or pd.isna(through):
            return cls.of(matrix)
        return cls.of(matrix, pd.Timestamp(through).to_pydatetime())

    def rows(self) -> pd.DataFrame:
        """One row per (horizon, expert): the stored form (the caller adds the keys)."""
        m = self.matrix()
        return pd.DataFrame(
            {
                "horizon_h": np.repeat(np.arange(1, self.horizon + 1), len(EXPERTS)).astype(
                    "int64"
                ),
                "expert": np.tile(np.asarray(EXPERTS, dtype=object), self.horizon),
                "weight": m.reshape(-1),
                "verified_through": self.verified_through,
            }
        )


def _fixed_share(logw: np.ndarray, share: float) -> np.ndarray:
    w = np.exp(logw - logw.max())
    w = w / w.sum()
    return np.log((1.0 - share) * w + share / len(w))


def expert_changes(model_change: np.ndarray, X: pd.DataFrame) -> np.ndarray:
    """(n, N) each expert's forecast of the log1p change from the last value (NaN: none)."""
    seasonal = (
        X["seasonal_24"].to_numpy(dtype=float) if "seasonal_24" in X else np.full(len(X), np.nan)
    )
    return np.column_stack([model_change, np.zeros(len(X)), seasonal])


def combine(model_change: np.ndarray, X: pd.DataFrame, weights: Weights | np.ndarray) -> np.ndarray:
    """The combined median change of each row: the experts' changes averaged with the
    weights of the row's horizon (or, given an (n, N) array, each row's own weights), a
    missing expert's weight shared among the others."""
    x = expert_changes(model_change, X)
    rows = (
        weights.at(X["horizon_h"].to_numpy().astype(int))
        if isinstance(weights, Weights)
        else np.asarray(weights, dtype=float)
    )
    w = rows * np.isfinite(x)
    total = w.sum(axis=1)
    out = np.nansum(np.where(np.isfinite(x), x, 0.0) * w, axis=1) / np.where(total > 0, total, 1)
    return np.where(total > 0, out, model_change)


def hourly_losses(
    model_change: np.ndarray, X: pd.DataFrame, y: np.ndarray, target_ts: pd.Series
) -> pd.DataFrame:
    """Per (target_ts, horizon_h) each expert's mean absolute log1p error over the rows where
    every expert has a value: what a step reads (`y`: the log1p change that happened)."""
    x = expert_changes(model_change, X)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    err = np.minimum(np.abs(x[ok] - np.asarray(y, dtype=float)[ok, None]), LOSS_CAP)
    frame = pd.DataFrame(err, columns=list(EXPERTS))
    frame["target_ts"] = pd.to_datetime(pd.Series(target_ts).to_numpy()[ok], utc=True)
    frame["horizon_h"] = X["horizon_h"].to_numpy().astype(int)[ok]
    return frame.groupby(["target_ts", "horizon_h"], as_index=False)[list(EXPERTS)].mean()


def learn(
    model_change: np.ndarray, X: pd.DataFrame, y: np.ndarray, target_ts: pd.Series, horizon: int
) -> Weights:
    """Weights stepped through a block's hours in time order from uniform: where a version
    starts (its calibration block)."""
    return Weights.uniform(horizon).step(hourly_losses(model_change, X, y, target_ts), None)


def online_weights(
    model_change: np.ndarray,
    X: pd.DataFrame,
    y: np.ndarray,
    issued_at: pd.Series,
    target_ts: pd.Series,
    start: Weights,
    eta: float = ETA,
    share: float = SHARE,
) -> np.ndarray:
    """(n, N) the weights each row would have been served with: `start` stepped, before
    each issue hour, by every hour verified by then (target hour <= issue time) — how
    predict serves a period, replayed on rows already observed (the train job's holdout)."""
    issued = pd.to_datetime(pd.Series(np.asarray(issued_at)), utc=True)
    losses = hourly_losses(model_change, X, y, target_ts)
    h = X["horizon_h"].to_numpy().astype(int)
    out = np.empty((len(X), len(EXPERTS)))
    hours = losses["target_ts"].dt.tz_convert(None).to_numpy()  # sorted by the groupby
    state, used = start, 0
    for t in sorted(issued.unique()):
        ready = int(
            np.searchsorted(hours, pd.Timestamp(t).tz_convert(None).to_datetime64(), "right")
        )
        if ready > used:
            state = state.step(losses.iloc[used:ready], None, eta, share)
            used = ready
        m = (issued == t).to_numpy()
        out[m] = state.at(h[m])
    return out
