"""The served median: the model combined online with the baselines, so that a place or a
period where the model loses to "it stays the same" is served the baseline instead.

Per target and horizon the served median is a convex combination, in log1p units around
the last value (the model's own scale), of the experts in `EXPERTS`: the model's median
change, persistence (no change) and seasonal naive (the value at the same hour a day
before the target, the `seasonal_24` feature). A row where an expert has no value (no
observation a day before) shares its weight among the others.

The weights are AdaHedge's (de Rooij, van Erven, Grunwald & Koolen 2014, "Follow the
leader if you can, hedge if you must"): exponential weights on each expert's cumulative
loss, whose learning rate is not a constant but ln N / (the cumulative mixability gap),
learned from the data (capped at `MAX_RATE`). Each verified hour brings, per horizon,
each expert's absolute error in log1p units summed over the forecasts verified (each
clipped to `LOSS_CAP`): an hour of many places is stronger evidence than an hour of one.
When one expert is steadily best the gap stays small, the rate grows and the
weights follow that expert (a model that beats the baselines is served nearly as it is);
when the experts take turns the gap grows and the weights hedge. Whatever the data, the
weights' loss over T hours is within `regret_bound(T, S)` = S (sqrt(T ln N) + 16/3 ln N +
2) + ln N / MAX_RATE of the best expert's, S the largest hourly loss (their Theorem 8,
with L*(T - L*)/T at most T S / 4; the cap on the rate adds at most ln N / MAX_RATE).
The combined median, whose absolute error is convex in
the forecast, does at least as well as the weights' average loss wherever errors stay
below the cap.

Losses and gap are discounted by 1 - 1 / MEMORY_H per hour, so the weights remember about
a month and can turn when the regime does (a place, a season, a retrained model); the
bound then holds over any stretch shorter than the memory. The memory was chosen on
stations held out of training (docs/benchmarks.md): a week or a day forgets the evidence
that the model is better too soon and costs accuracy where the model wins.

A version starts from the state learned the same way on its calibration block (stored in
its metadata); predict steps it every run from what has since been verified and stores it
by issue time (`common.predict.combination`), like the interval offsets, and the batch
rows, the snapshot and the api's online predictions all serve it through
`ForecastModel.predict`.

Per place (`common.forecasting.place_weights`): each place's own state per horizon
group, started from the network's weights when the place's first forecast is verified and
stepped on its own losses, serves that place instead of the network's; a place without one
is served the network's.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.core.timeutil import iso

EXPERTS = ("model", "persistence", "seasonal_naive")
LOSS_CAP = 1.0  # log1p units: an error beyond a factor e counts as the worst loss, 1
# Hours after which a loss weighs e times less (discount 1 - 1/MEMORY_H): a month, chosen on
# stations held out of training (bench/combination_study.py; a week and a day cost more).
MEMORY_H = 720
# The rate's ceiling: an expert's weight grows e-fold only once it is ahead by four log1p
# units of summed error (e.g. 80 forecasts each 0.05 better), so a few forecasts, as on a
# small calibration block, cannot hand the median to one expert (two fits of the same
# data then serve alike: tests/train/test_gate_evidence.py); a network's hour of many
# forecasts is that much evidence at once.
MAX_RATE = 0.25
# The weight an expert starts with at a horizon where the version is served as persistence
# from its first hour (`Weights.as_persistence`): the served median is persistence's to
# within a thousandth of the experts' spread, and an expert comes back only once verified
# hours show it ahead by ln(1000) / rate summed log1p units (or the memory forgets).
HELD_BACK_WEIGHT = 1e-3


def regret_bound(
    hours: int, scale: float = 1.0, experts: int = len(EXPERTS), head_start: float = 0.0
) -> float:
    """Bound on (the weights' total loss - the best expert's) over `hours` verified hours
    whose losses lie in [0, scale], without discount (de Rooij et al. 2014, Theorem 8, plus
    what the rate's cap can cost). `head_start`: the most cumulative loss the state started
    with put on any expert beyond the least (a place started from the network's weights:
    at most PLACE_HEAD_START); a start acts as a prior exp(-rate x loss), which adds at most
    that to the mix loss's bound."""
    ln = math.log(experts)
    return scale * (math.sqrt(hours * ln) + 16 / 3 * ln + 2) + ln / MAX_RATE + head_start


def learning_rates(loss: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """AdaHedge's learning rate per row, ln N / gap, at most MAX_RATE."""
    ln = math.log(loss.shape[-1])
    return ln / np.maximum(gap, ln / MAX_RATE)


def hedge_weights(loss: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """(rows, N) exponential weights on cumulative `loss` at AdaHedge's rate."""
    w = np.exp(-learning_rates(loss, gap)[:, None] * (loss - loss.min(axis=1, keepdims=True)))
    return w / w.sum(axis=1, keepdims=True)


def _hedge_and_mix(loss: np.ndarray, gap: float, ell: np.ndarray) -> tuple[float, float]:
    """An hour's loss of the weights (`hedge`) and its mix loss -ln(sum w exp(-eta ell)) /
    eta, in log space so that no rate underflows."""
    w = hedge_weights(loss[None, :], np.array([gap]))[0]
    hedge = float(w @ ell)
    eta = float(learning_rates(loss[None, :], np.array([gap]))[0])
    a = -eta * (loss - loss.min()) - eta * (
        ell - ell.min()
    )  # log w + log exp(-eta ell), unnormalised
    b = -eta * (loss - loss.min())
    log_ratio = _logsumexp(a) - _logsumexp(b)
    return hedge, float(ell.min() - log_ratio / eta)


def _logsumexp(x: np.ndarray) -> float:
    top = float(x.max())
    return top + math.log(float(np.exp(x - top).sum()))


@dataclass(frozen=True)
class Weights:
    """Per horizon (index h - 1) AdaHedge's state: each expert of `EXPERTS`'s discounted
    cumulative loss and the discounted cumulative mixability gap; `matrix()` the weights
    they serve. `verified_through`: the last target hour stepped in (None: none yet)."""

    losses: tuple[tuple[float, ...], ...]
    gaps: tuple[float, ...]
    verified_through: dt.datetime | None = None

    @classmethod
    def uniform(cls, horizon: int, verified_through: dt.datetime | None = None) -> Weights:
        return cls(((0.0,) * len(EXPERTS),) * horizon, (0.0,) * horizon, verified_through)

    @classmethod
    def of(
        cls, losses: np.ndarray, gaps: np.ndarray, verified_through: dt.datetime | None = None
    ) -> Weights:
        rows = np.asarray(losses, dtype=float).reshape(len(gaps), len(EXPERTS))
        return cls(
            tuple(tuple(float(v) for v in row) for row in rows),
            tuple(float(g) for g in gaps),
            verified_through,
        )

    @property
    def horizon(self) -> int:
        return len(self.gaps)

    def matrix(self) -> np.ndarray:
        """(H, N) the weights served at each horizon (rows sum to 1)."""
        loss = np.asarray(self.losses, dtype=float).reshape(self.horizon, len(EXPERTS))
        return hedge_weights(loss, np.asarray(self.gaps, dtype=float))

    def at(self, h: np.ndarray) -> np.ndarray:
        """(n, N) weights of rows of horizons `h` (equal beyond the stored ones)."""
        k = np.asarray(h, dtype=int) - 1
        out = np.full((len(k), len(EXPERTS)), 1.0 / len(EXPERTS))
        ok = (k >= 0) & (k < self.horizon)
        if self.horizon:
            out[ok] = self.matrix()[k[ok]]
        return out

    def as_persistence(self, horizons: Sequence[int]) -> Weights:
        """The state served as persistence at `horizons` (1-based): every other expert's
        cumulative loss raised to persistence's plus the head start that puts its weight at
        HELD_BACK_WEIGHT at that horizon's rate, the gap kept. It is AdaHedge's own state, so
        predict steps it as any other: the model's weight grows back as verified hours show
        it beating persistence, and the discount forgets the head start over the memory.
        Where a version lost to persistence on the evidence it was gated on, this is what
        it starts from (`common.train.candidate`)."""
        loss = np.asarray(self.losses, dtype=float).reshape(self.horizon, len(EXPERTS)).copy()
        gap = np.asarray(self.gaps, dtype=float)
        rates = learning_rates(loss, gap)
        p = EXPERTS.index("persistence")
        others = np.arange(len(EXPERTS)) != p
        for h in horizons:
            k = int(h) - 1
            if 0 <= k < self.horizon:
                head = math.log(1 / HELD_BACK_WEIGHT) / rates[k]
                loss[k, others] = np.maximum(loss[k, others], loss[k, p] + head)
        return Weights.of(loss, gap, self.verified_through)

    def step(
        self, losses: pd.DataFrame, through: dt.datetime | None, memory: float = MEMORY_H
    ) -> Weights:
        """The state after the verified hours of `losses`, taken in time order.

        `losses` has one row per (target_ts, horizon_h) with a column per expert: its
        absolute log1p errors, each clipped to LOSS_CAP, summed over the forecasts
        verified in that hour. Rows of horizons not stored, or with a missing loss, are
        ignored.
        """
        loss = np.asarray(self.losses, dtype=float).reshape(self.horizon, len(EXPERTS)).copy()
        gap = np.asarray(self.gaps, dtype=float).copy()
        keep_share = 1.0 - 1.0 / memory if memory else 1.0
        if len(losses):
            rows = losses.sort_values(["target_ts", "horizon_h"], kind="stable")
            k = rows["horizon_h"].to_numpy(int) - 1
            hour = np.clip(rows[list(EXPERTS)].to_numpy(float), 0.0, None)
            keep = (k >= 0) & (k < self.horizon) & np.isfinite(hour).all(axis=1)
            for kk, ell in zip(k[keep], hour[keep], strict=True):
                hedge, mix = _hedge_and_mix(loss[kk], gap[kk], ell)
                gap[kk] = keep_share * gap[kk] + max(hedge - mix, 0.0)
                loss[kk] = keep_share * loss[kk] + ell
        return Weights.of(loss, gap, through)

    def to_json(self) -> dict[str, Any]:
        through = self.verified_through
        return {
            "experts": list(EXPERTS),
            "verified_through": None if through is None else iso(through),
            "losses": [list(row) for row in self.losses],
            "gaps": list(self.gaps),
            "weights": self.matrix().round(6).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Weights:
        names = list(data.get("experts", EXPERTS))
        rows = np.asarray(data["losses"], dtype=float).reshape(-1, len(names))
        # An expert the document does not know starts with the worst loss seen beside it.
        worst = rows.max(axis=1) if rows.size else np.zeros(len(rows))
        loss = np.column_stack([rows[:, names.index(e)] if e in names else worst for e in EXPERTS])
        through = data.get("verified_through")
        when = None if through is None else pd.Timestamp(through).to_pydatetime()
        return cls.of(loss, np.asarray(data["gaps"], dtype=float), when)

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, horizon: int) -> Weights:
        """From stored rows (horizon_h, expert, cum_loss, gap, verified_through)."""
        loss = np.zeros((horizon, len(EXPERTS)))
        gap = np.zeros(horizon)
        for h, e, value, g in zip(
            rows["horizon_h"].astype(int),
            rows["expert"],
            rows["cum_loss"],
            rows["gap"],
            strict=True,
        ):
            if 1 <= h <= horizon and e in EXPERTS:
                loss[h - 1, EXPERTS.index(e)] = float(value)
                gap[h - 1] = float(g)
        through = pd.to_datetime(rows["verified_through"], utc=True).max() if len(rows) else None
        if through is None or pd.isna(through):
            return cls.of(loss, gap)
        return cls.of(loss, gap, pd.Timestamp(through).to_pydatetime())

    def rows(self) -> pd.DataFrame:
        """One row per (horizon, expert): the stored form (the caller adds the keys)."""
        n = len(EXPERTS)
        return pd.DataFrame(
            {
                "horizon_h": np.repeat(np.arange(1, self.horizon + 1), n).astype("int64"),
                "expert": np.tile(np.asarray(EXPERTS, dtype=object), self.horizon),
                "weight": self.matrix().reshape(-1),
                "cum_loss": np.asarray(self.losses, dtype=float).reshape(-1),
                "gap": np.repeat(np.asarray(self.gaps, dtype=float), n),
                "verified_through": self.verified_through,
            }
        )


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
    """Per (target_ts, horizon_h) each expert's absolute log1p errors (each clipped to
    LOSS_CAP) summed over the rows where every expert has a value, and `n` those rows:
    what a step reads (`y`: the log1p change that happened)."""
    x = expert_changes(model_change, X)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    err = np.minimum(np.abs(x[ok] - np.asarray(y, dtype=float)[ok, None]), LOSS_CAP)
    frame = pd.DataFrame(err, columns=list(EXPERTS))
    frame["target_ts"] = pd.to_datetime(pd.Series(target_ts).to_numpy()[ok], utc=True)
    frame["horizon_h"] = X["horizon_h"].to_numpy().astype(int)[ok]
    frame["n"] = 1
    return frame.groupby(["target_ts", "horizon_h"], as_index=False)[[*EXPERTS, "n"]].sum()


def learn(
    model_change: np.ndarray, X: pd.DataFrame, y: np.ndarray, target_ts: pd.Series, horizon: int
) -> Weights:
    """Weights stepped through a block's hours in time order from uniform: where a version
    starts (its calibration block)."""
    return Weights.uniform(horizon).step(hourly_losses(model_change, X, y, target_ts), None)


def issue_hours(issued_at: pd.Series | np.ndarray) -> list[tuple[pd.Timestamp, np.ndarray]]:
    """Each issue hour of `issued_at` in time order with the positions of its rows: a replay
    walks a year of hours without comparing every row with every hour."""
    issued = pd.to_datetime(pd.Series(np.asarray(issued_at)), utc=True)
    codes, hours = pd.factorize(issued, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(hours) + 1))
    return [(hours[k], order[bounds[k] : bounds[k + 1]]) for k in range(len(hours))]


def online_weights(
    model_change: np.ndarray,
    X: pd.DataFrame,
    y: np.ndarray,
    issued_at: pd.Series,
    target_ts: pd.Series,
    start: Weights,
    memory: float = MEMORY_H,
) -> np.ndarray:
    """(n, N) the weights each row would have been served with: `start` stepped, before
    each issue hour, by every hour verified by then (target hour <= issue time) — how
    predict serves a period, replayed on rows already observed (the train job's holdout)."""
    losses = hourly_losses(model_change, X, y, target_ts)
    h = X["horizon_h"].to_numpy().astype(int)
    out = np.empty((len(X), len(EXPERTS)))
    hours = losses["target_ts"].dt.tz_convert(None).to_numpy()  # sorted by the groupby
    state, used = start, 0
    for t, m in issue_hours(issued_at):
        ready = int(np.searchsorted(hours, t.tz_convert(None).to_datetime64(), "right"))
        if ready > used:
            state = state.step(losses.iloc[used:ready], None, memory)
            used = ready
        out[m] = state.at(h[m])
    return out


# The gate's horizon groups, also the monitor's and the per-place weights': where the
# model's skill differs (common.forecasting.place_weights says why places use groups).
HORIZON_GROUPS: tuple[tuple[int, int], ...] = ((1, 3), (4, 12), (13, 24))


def horizon_groups(horizon: int) -> tuple[tuple[int, int], ...]:
    """The gate's horizon groups cut to 1..horizon, the last one reaching `horizon`."""
    out = [(a, min(b, horizon)) for a, b in HORIZON_GROUPS if a <= horizon]
    if out and out[-1][1] < horizon:
        out[-1] = (out[-1][0], horizon)
    return tuple(out)


def group_name(group: tuple[int, int]) -> str:
    return f"{group[0]}-{group[1]}"


def group_of(h: np.ndarray, groups: Sequence[tuple[int, int]]) -> np.ndarray:
    """Index in `groups` of each horizon (-1 for none)."""
    h = np.asarray(h, dtype=int)
    out = np.full(len(h), -1)
    for k, (a, b) in enumerate(groups):
        out[(h >= a) & (h <= b)] = k
    return out
