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

Per place (`PlaceWeights`, below): each place's own state per horizon group, started from
the network's weights when the place's first forecast is verified and stepped on its own
losses, serves that place instead of the network's; a place without one is served the
network's.
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


def _rates(loss: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """AdaHedge's learning rate per row, ln N / gap, at most MAX_RATE."""
    ln = math.log(loss.shape[-1])
    return ln / np.maximum(gap, ln / MAX_RATE)


def _weights(loss: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """(rows, N) exponential weights on cumulative `loss` at AdaHedge's rate."""
    w = np.exp(-_rates(loss, gap)[:, None] * (loss - loss.min(axis=1, keepdims=True)))
    return w / w.sum(axis=1, keepdims=True)


def _hedge_and_mix(loss: np.ndarray, gap: float, ell: np.ndarray) -> tuple[float, float]:
    """An hour's loss of the weights (`hedge`) and its mix loss -ln(sum w exp(-eta ell)) /
    eta, in log space so that no rate underflows."""
    w = _weights(loss[None, :], np.array([gap]))[0]
    hedge = float(w @ ell)
    eta = float(_rates(loss[None, :], np.array([gap]))[0])
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
        return _weights(loss, np.asarray(self.gaps, dtype=float))

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
        rates = _rates(loss, gap)
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
            state = state.step(losses.iloc[used:ready], None, memory)
            used = ready
        m = (issued == t).to_numpy()
        out[m] = state.at(h[m])
    return out


# -- Weights per place ------------------------------------------------------------------
#
# The network's weights learn from every place's forecasts, so where the model wins on
# most places they follow the model, also at a place where it loses (a new city, a
# low-cost sensor: 1.10-2.38x persistence in docs/benchmarks.md). Each place therefore
# gets AdaHedge's state of its own, started from the network's weights and stepped on its
# own verified losses.
#
# Per horizon group, not per horizon: a place verifies one forecast per horizon an hour,
# so a state per horizon would be 24 x (3 losses + 1 gap) numbers each learning from one
# loss an hour; per group (the gate's 1-3, 4-12, 13-24 h) it is 3 x 4 numbers, each
# learning from the group's 3-12 losses an hour, so a place escapes the network's weights
# 3-12x sooner on the same evidence. Within a group the network's weights barely differ
# by horizon (the gate's groups are where the model's skill differs).

HORIZON_GROUPS: tuple[tuple[int, int], ...] = ((1, 3), (4, 12), (13, 24))
# The least weight a place's start gives an expert (the network's weights floored): an
# expert the network has all but dropped comes back at a place once it is ahead there by
# ln(1 / PLACE_START_FLOOR) / rate summed log1p units (at most PLACE_HEAD_START), a few
# hours of a losing model's errors over a group's horizons.
PLACE_START_FLOOR = 0.01
PLACE_HEAD_START = math.log(1 / PLACE_START_FLOOR) / MAX_RATE


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


def loss_col(expert: str) -> str:
    return f"loss_{expert}"


def weight_col(expert: str) -> str:
    return f"weight_{expert}"


LOSS_COLS = [loss_col(e) for e in EXPERTS]
WEIGHT_COLS = [weight_col(e) for e in EXPERTS]


def place_start(network: Weights, groups: Sequence[tuple[int, int]]) -> np.ndarray:
    """(G, N) the cumulative losses a new place starts from: at AdaHedge's top rate (its
    gap starts at 0) they serve the network's weights averaged over each group's horizons,
    each floored at PLACE_START_FLOOR. As the place's own evidence lowers its rate, the
    start weighs less: it is a prior, whose cost in regret is at most PLACE_HEAD_START."""
    out = np.zeros((len(groups), len(EXPERTS)))
    if not network.horizon:
        return out
    m = network.matrix()
    for k, (a, b) in enumerate(groups):
        rows = m[max(a, 1) - 1 : min(b, network.horizon)]
        w = rows.mean(axis=0) if len(rows) else np.full(len(EXPERTS), 1 / len(EXPERTS))
        w = np.maximum(w / w.sum(), PLACE_START_FLOOR)
        out[k] = np.log(w.max() / w) / MAX_RATE
    return out


def _step_rows(loss: np.ndarray, gap: np.ndarray, ell: np.ndarray, keep_share: float) -> None:
    """One verified hour for many independent states at once (in place): (m, N) losses,
    (m,) gaps, (m, N) the hour's losses. `Weights.step`'s update, vectorised."""
    eta = _rates(loss, gap)
    base = loss - loss.min(axis=1, keepdims=True)
    w = np.exp(-eta[:, None] * base)
    w /= w.sum(axis=1, keepdims=True)
    hedge = (w * ell).sum(axis=1)
    a = -eta[:, None] * base - eta[:, None] * (ell - ell.min(axis=1, keepdims=True))
    b = -eta[:, None] * base
    log_ratio = _lse_rows(a) - _lse_rows(b)
    mix = ell.min(axis=1) - log_ratio / eta
    gap[:] = keep_share * gap + np.maximum(hedge - mix, 0.0)
    loss[:] = keep_share * loss + ell


def _lse_rows(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1)
    return top + np.log(np.exp(x - top[:, None]).sum(axis=1))


@dataclass(frozen=True)
class PlaceWeights:
    """Per place and horizon group, AdaHedge's state (`state`: one row per (location_id,
    horizon_group) with LOSS_COLS, `gap`, `verified_through`, `started_at`, `model_version`).
    A place with no row is served the network's weights (`at`). `fixed`: served weights
    alone, by place (`served`: what the api reads from the snapshot), no state."""

    groups: tuple[tuple[int, int], ...]
    state: pd.DataFrame
    fixed: dict[str, list[list[float]]] | None = None

    COLUMNS = (
        "location_id",
        "horizon_group",
        *LOSS_COLS,
        "gap",
        "verified_through",
        "started_at",
        "model_version",
    )

    @classmethod
    def empty(cls, horizon: int) -> PlaceWeights:
        return cls(horizon_groups(horizon), pd.DataFrame(columns=list(cls.COLUMNS)))

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, horizon: int) -> PlaceWeights:
        """From stored rows (the columns of `rows()`; groups not of this horizon dropped)."""
        groups = horizon_groups(horizon)
        names = [group_name(g) for g in groups]
        if rows is None or rows.empty:
            return cls.empty(horizon)
        frame = rows[rows["horizon_group"].isin(names)].copy()
        for c in cls.COLUMNS:
            if c not in frame:
                frame[c] = None
        frame["location_id"] = frame["location_id"].astype(str)
        frame = frame[list(cls.COLUMNS)].sort_values(["location_id", "horizon_group"])
        return cls(groups, frame.reset_index(drop=True))

    @classmethod
    def served(
        cls, groups: Sequence[Sequence[int]], by_place: dict[str, list[list[float]]]
    ) -> PlaceWeights:
        """Weights as served (`by_place()`'s form), without the state they came from."""
        cut = tuple((int(g[0]), int(g[1])) for g in groups)
        return cls(cut, pd.DataFrame(columns=list(cls.COLUMNS)), dict(by_place))

    @property
    def places(self) -> list[str]:
        return sorted(set(self.state["location_id"]) | set(self.fixed or ()))

    def weights(self) -> pd.DataFrame:
        """The served weights, one row per (location_id, horizon_group), WEIGHT_COLS
        rounded to 6 decimals: the numbers batch serves and the snapshot carries to the
        api, so both combine with the same ones."""
        if self.fixed is not None:
            raise ValueError("weights as served carry no state")
        loss = self.state[LOSS_COLS].to_numpy(float)
        gap = self.state["gap"].to_numpy(float)
        w = _weights(loss, gap).round(6) if len(loss) else np.empty((0, len(EXPERTS)))
        out = self.state[["location_id", "horizon_group"]].copy()
        out[WEIGHT_COLS] = w
        return out

    def by_place(self) -> dict[str, list[list[float]]]:
        """location_id -> the served weights of each group (in `groups` order), for the
        snapshot."""
        if self.fixed is not None:
            return self.fixed
        w = self.weights()
        order = {group_name(g): k for k, g in enumerate(self.groups)}
        out: dict[str, list[list[float]]] = {}
        for loc, g, *row in w.itertuples(index=False):
            entry = out.setdefault(loc, [[] for _ in self.groups])
            entry[order[g]] = [float(v) for v in row]
        return {k: v for k, v in out.items() if all(v)}

    def at(self, location_id: np.ndarray, h: np.ndarray, network: Weights | None) -> np.ndarray:
        """(n, N) the weights of rows (place, horizon): the place's group weights where it
        has a state, else the network's at the horizon (equal ones without a network)."""
        h = np.asarray(h, dtype=int)
        out = (
            network.at(h)
            if network is not None
            else np.full((len(h), len(EXPERTS)), 1.0 / len(EXPERTS))
        )
        return rows_from_places(self.by_place(), self.groups, location_id, h, out)

    def step(
        self,
        losses: pd.DataFrame,
        network: Weights,
        through: dt.datetime,
        version: str | None = None,
        memory: float = MEMORY_H,
        issued: dt.datetime | None = None,
    ) -> PlaceWeights:
        """The state after the verified hours of `losses` (one row per (location_id,
        target_ts, horizon_group) with a column per expert: the summed clipped losses of the
        place's forecasts of that group verified in that hour, and `n`), each place's hours
        after its own `verified_through` only, in time order. A place with losses and no
        state starts from `network` (`place_start`); a place with a state and no new hour
        keeps it (carried, so the next run reads one hour back). `issued`: the issue time
        a new place's state is started at (`started_at`; default `through`)."""
        names = [group_name(g) for g in self.groups]
        state = self.state.set_index(["location_id", "horizon_group"])
        losses = losses if len(losses) else pd.DataFrame(columns=["location_id", "target_ts"])
        losses = losses[losses["horizon_group"].isin(names)] if len(losses) else losses
        new = sorted(set(losses["location_id"].astype(str)) - set(self.state["location_id"]))
        if new:
            start = place_start(network, self.groups)
            rows = pd.DataFrame(
                {
                    "location_id": np.repeat(new, len(names)),
                    "horizon_group": np.tile(names, len(new)),
                    "gap": 0.0,
                    "verified_through": pd.NaT,
                    "started_at": through if issued is None else issued,
                    "model_version": version,
                }
            )
            rows[LOSS_COLS] = np.tile(start, (len(new), 1))
            state = pd.concat([state, rows.set_index(["location_id", "horizon_group"])])
        state = state.copy()
        if len(losses):
            frame = losses.assign(
                location_id=losses["location_id"].astype(str),
                target_ts=pd.to_datetime(losses["target_ts"], utc=True),
            )
            seen = pd.to_datetime(
                state["verified_through"].reindex(
                    pd.MultiIndex.from_frame(frame[["location_id", "horizon_group"]])
                ),
                utc=True,
            ).to_numpy()
            ts = frame["target_ts"].to_numpy()
            fresh = pd.isna(seen) | (ts > seen)
            frame = frame[fresh & np.isfinite(frame[list(EXPERTS)].to_numpy(float)).all(axis=1)]
            keep_share = 1.0 - 1.0 / memory if memory else 1.0
            loss = state[LOSS_COLS].to_numpy(float).copy()
            gap = state["gap"].to_numpy(float).copy()
            pos = state.index.get_indexer(
                pd.MultiIndex.from_frame(frame[["location_id", "horizon_group"]])
            )
            hour = frame[list(EXPERTS)].to_numpy(float).clip(0.0, None)
            for t in np.unique(frame["target_ts"].to_numpy()):
                m = frame["target_ts"].to_numpy() == t
                idx = pos[m]
                sub_loss, sub_gap = loss[idx], gap[idx]
                _step_rows(sub_loss, sub_gap, hour[m], keep_share)
                loss[idx], gap[idx] = sub_loss, sub_gap
            state[LOSS_COLS] = loss
            state["gap"] = gap
            stepped = pd.MultiIndex.from_frame(frame[["location_id", "horizon_group"]]).unique()
            state.loc[stepped, "verified_through"] = through
            if version is not None:
                state.loc[stepped, "model_version"] = version
        out = state.reset_index()[list(self.COLUMNS)]
        return PlaceWeights(self.groups, out.sort_values(["location_id", "horizon_group"]))

    def rows(self) -> pd.DataFrame:
        """The stored form: the state and the weights it serves (the caller adds keys)."""
        return self.state.merge(self.weights(), on=["location_id", "horizon_group"])


def rows_from_places(
    by_place: dict[str, list[list[float]]],
    groups: Sequence[tuple[int, int]],
    location_id: np.ndarray,
    h: np.ndarray,
    base: np.ndarray,
) -> np.ndarray:
    """`base` (n, N) with the rows of places in `by_place` replaced by their group's
    weights: one rule for batch rows and the api's online ones."""
    out = np.array(base, dtype=float, copy=True)
    if not by_place:
        return out
    ids = list(by_place)
    table = np.asarray([by_place[i] for i in ids], dtype=float)  # (places, groups, N)
    k = group_of(h, groups)
    at = pd.Index(ids).get_indexer(np.asarray(location_id).astype(str))
    m = (k >= 0) & (at >= 0) & (k < table.shape[1])
    out[m] = table[at[m], k[m]]
    return out


def place_hourly_losses(
    model_change: np.ndarray,
    X: pd.DataFrame,
    y: np.ndarray,
    target_ts: pd.Series,
    location_id: pd.Series,
    groups: Sequence[tuple[int, int]],
) -> pd.DataFrame:
    """Per (location_id, target_ts, horizon_group): `hourly_losses` of one place's rows
    summed over the group's horizons (what a place's step reads)."""
    x = expert_changes(model_change, X)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y)
    k = group_of(X["horizon_h"].to_numpy(), groups)
    ok &= k >= 0
    err = np.minimum(np.abs(x[ok] - np.asarray(y, dtype=float)[ok, None]), LOSS_CAP)
    frame = pd.DataFrame(err, columns=list(EXPERTS))
    frame["location_id"] = np.asarray(location_id).astype(str)[ok]
    frame["target_ts"] = pd.to_datetime(pd.Series(target_ts).to_numpy()[ok], utc=True)
    names = np.array([group_name(g) for g in groups], dtype=object)
    frame["horizon_group"] = names[k[ok]]
    frame["n"] = 1
    keys = ["location_id", "target_ts", "horizon_group"]
    return frame.groupby(keys, as_index=False)[[*EXPERTS, "n"]].sum()


def online_place_weights(
    model_change: np.ndarray,
    X: pd.DataFrame,
    y: np.ndarray,
    issued_at: pd.Series,
    target_ts: pd.Series,
    location_id: pd.Series,
    start: Weights,
    memory: float = MEMORY_H,
) -> np.ndarray:
    """(n, N) the weights each row would have been served with per place: as
    `online_weights`, the network's state stepped before each issue hour by every place's
    hours verified by then, and each place's own state (started from the network's the
    first time the place has a verified hour) stepped by its own; a row of a place with
    no state yet gets the network's. How predict serves, replayed on observed rows."""
    groups = horizon_groups(start.horizon)
    issued = pd.to_datetime(pd.Series(np.asarray(issued_at)), utc=True)
    net = hourly_losses(model_change, X, y, target_ts)
    own = place_hourly_losses(model_change, X, y, target_ts, location_id, groups)
    own = own.sort_values("target_ts", kind="stable").reset_index(drop=True)
    h = X["horizon_h"].to_numpy().astype(int)
    loc = np.asarray(location_id).astype(str)
    ids = sorted(set(loc))
    row_place = pd.Index(ids).get_indexer(loc)
    row_group = group_of(h, groups)
    # The places' states as arrays (PlaceWeights.step's arithmetic, without its frames:
    # a year of hours replays in seconds).
    loss = np.zeros((len(ids), len(groups), len(EXPERTS)))
    gap = np.zeros((len(ids), len(groups)))
    started = np.zeros(len(ids), dtype=bool)
    own_place = pd.Index(ids).get_indexer(own["location_id"])
    names = [group_name(g) for g in groups]
    own_group = pd.Index(names).get_indexer(own["horizon_group"])
    own_loss = own[list(EXPERTS)].to_numpy(float).clip(0.0, None)
    keep_share = 1.0 - 1.0 / memory if memory else 1.0
    out = np.empty((len(X), len(EXPERTS)))
    net_hours = net["target_ts"].dt.tz_convert(None).to_numpy()
    own_hours = own["target_ts"].dt.tz_convert(None).to_numpy()
    network, used, used_own = start, 0, 0
    for t in sorted(issued.unique()):
        when = pd.Timestamp(t).tz_convert(None).to_datetime64()
        ready = int(np.searchsorted(net_hours, when, "right"))
        if ready > used:
            network = network.step(net.iloc[used:ready], None, memory)
            used = ready
        ready = int(np.searchsorted(own_hours, when, "right"))
        if ready > used_own:
            fresh = np.unique(own_place[used_own:ready])
            new = fresh[~started[fresh]]
            if len(new):
                loss[new] = place_start(network, groups)
                started[new] = True
            for hour in np.unique(own_hours[used_own:ready]):
                m = used_own + np.flatnonzero(own_hours[used_own:ready] == hour)
                p, g = own_place[m], own_group[m]
                sub_loss, sub_gap = loss[p, g], gap[p, g]
                _step_rows(sub_loss, sub_gap, own_loss[m], keep_share)
                loss[p, g], gap[p, g] = sub_loss, sub_gap
            used_own = ready
        m = (issued == t).to_numpy()
        served = network.at(h[m])
        mine = started[row_place[m]] & (row_group[m] >= 0)
        if mine.any():
            p, g = row_place[m][mine], row_group[m][mine]
            served[mine] = _weights(loss[p, g], gap[p, g]).round(6)
        out[m] = served
    return out
