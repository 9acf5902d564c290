"""Weights per place: each place's own AdaHedge state per horizon group, started from the
network's weights (`common.forecasting.combination`) when the place's first forecast is
verified and stepped on its own losses, serves that place instead of the network's; a
place without one is served the network's.

Beside the weights, each place's state keeps interval offsets of its own per horizon group
(`lower_offset`, `upper_offset`, log units): added to the target's adaptive offsets
(`common.forecasting.adaptation`), they are stepped the same way on the place's own
verified forecasts, so a band too wide or too narrow at one place is corrected there,
not by the network's average.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.forecasting.adaptation import aci_step
from common.forecasting.combination import (
    EXPERTS,
    MAX_RATE,
    MEMORY_H,
    Weights,
    group_name,
    group_of,
    hedge_weights,
    horizon_groups,
    learning_rates,
)

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

# The least weight a place's start gives an expert (the network's weights floored): an
# expert the network has all but dropped comes back at a place once it is ahead there by
# ln(1 / PLACE_START_FLOOR) / rate summed log1p units (at most PLACE_HEAD_START), a few
# hours of a losing model's errors over a group's horizons.
PLACE_START_FLOOR = 0.01
PLACE_HEAD_START = math.log(1 / PLACE_START_FLOOR) / MAX_RATE

# How far back a predict shard reads its places' states (and the monitor the states they
# are served): every run writes a row for each place with a state (carried when nothing
# was verified), so one hour back normally; a day allows a shard to miss runs. Longer gaps
# restart the place from the network's weights, which bounds what is scanned each hour to
# two day-partitions of the shard's places.
PLACE_LOOKBACK_H = 24


def loss_col(expert: str) -> str:
    return f"loss_{expert}"


def weight_col(expert: str) -> str:
    return f"weight_{expert}"


LOSS_COLS = [loss_col(e) for e in EXPERTS]
WEIGHT_COLS = [weight_col(e) for e in EXPERTS]
# A place's own widening of the p10 and p90 per group (log units, added to the target's).
OFFSET_COLS = ["lower_offset", "upper_offset"]


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


def step_rows(loss: np.ndarray, gap: np.ndarray, ell: np.ndarray, keep_share: float) -> None:
    """One verified hour for many independent states at once (in place): (m, N) losses,
    (m,) gaps, (m, N) the hour's losses. `Weights.step`'s update, vectorised."""
    eta = learning_rates(loss, gap)
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


def _started_rows(
    new: list[str],
    groups: Sequence[tuple[int, int]],
    network: Weights,
    started: dt.datetime,
    version: str | None,
) -> pd.DataFrame:
    """The state rows of places new to the state: each group started from `network`."""
    names = [group_name(g) for g in groups]
    rows = pd.DataFrame(
        {
            "location_id": np.repeat(new, len(names)),
            "horizon_group": np.tile(names, len(new)),
            "gap": 0.0,
            "lower_offset": 0.0,
            "upper_offset": 0.0,
            "verified_through": pd.NaT,
            "started_at": started,
            "model_version": version,
        }
    )
    rows[LOSS_COLS] = np.tile(place_start(network, groups), (len(new), 1))
    return rows


def _step_hours(state: pd.DataFrame, frame: pd.DataFrame, memory: float) -> None:
    """Step `state` (indexed by location_id, horizon_group; in place) on the verified hours
    of `frame`, hour by hour in time order, every place of an hour at once."""
    keep_share = 1.0 - 1.0 / memory if memory else 1.0
    loss = state[LOSS_COLS].to_numpy(float).copy()
    gap = state["gap"].to_numpy(float).copy()
    pos = state.index.get_indexer(pd.MultiIndex.from_frame(frame[["location_id", "horizon_group"]]))
    hour = frame[list(EXPERTS)].to_numpy(float).clip(0.0, None)
    times = frame["target_ts"].to_numpy()
    for t in np.unique(times):
        m = times == t
        idx = pos[m]
        sub_loss, sub_gap = loss[idx], gap[idx]
        step_rows(sub_loss, sub_gap, hour[m], keep_share)
        loss[idx], gap[idx] = sub_loss, sub_gap
    state[LOSS_COLS] = loss
    state["gap"] = gap


def _step_offsets(state: pd.DataFrame, frame: pd.DataFrame, eta: float) -> None:
    """Step each place's own interval offsets in `state` (in place) on the verified hours
    of `frame` (`n`, and `below` / `above` of them beyond the bounds as served), hour by
    hour in time order: `aci_step` on the share of the place's forecasts of the group."""
    if not eta or not len(frame) or not {"below", "above"} <= set(frame.columns):
        return
    pos = state.index.get_indexer(pd.MultiIndex.from_frame(frame[["location_id", "horizon_group"]]))
    n = frame["n"].to_numpy(float)
    ok = n > 0
    shares = {c: frame[c].to_numpy(float) / np.where(ok, n, 1.0) for c in ("below", "above")}
    times = frame["target_ts"].to_numpy()
    for col, tail in zip(OFFSET_COLS, ("below", "above"), strict=True):
        arr = state[col].to_numpy(float).copy()
        for t in np.unique(times):
            m = (times == t) & ok
            arr[pos[m]] = aci_step(arr[pos[m]], shares[tail][m], eta)
        state[col] = arr


@dataclass(frozen=True)
class PlaceWeights:
    """Per place and horizon group, AdaHedge's state and the place's own interval offsets
    (`state`: one row per (location_id, horizon_group) with LOSS_COLS, `gap`, OFFSET_COLS,
    `verified_through`, `started_at`, `model_version`). A place with no row is served the
    network's weights (`at`) and the target's offsets alone. `fixed` / `fixed_offsets`:
    served weights and offsets alone, by place (`served`: what the api reads from the
    snapshot), no state."""

    groups: tuple[tuple[int, int], ...]
    state: pd.DataFrame
    fixed: dict[str, list[list[float]]] | None = None
    fixed_offsets: dict[str, list[list[float]]] | None = None

    COLUMNS = (
        "location_id",
        "horizon_group",
        *LOSS_COLS,
        "gap",
        *OFFSET_COLS,
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
        # Rows written before places had offsets of their own: none yet.
        frame[OFFSET_COLS] = frame[OFFSET_COLS].astype(float).fillna(0.0)
        frame["location_id"] = frame["location_id"].astype(str)
        frame = frame[list(cls.COLUMNS)].sort_values(["location_id", "horizon_group"])
        return cls(groups, frame.reset_index(drop=True))

    @classmethod
    def served(
        cls,
        groups: Sequence[Sequence[int]],
        by_place: dict[str, list[list[float]]],
        offsets: dict[str, list[list[float]]] | None = None,
    ) -> PlaceWeights:
        """Weights (and offsets) as served (`by_place()`'s and `offsets_by_place()`'s form),
        without the state they came from."""
        cut = tuple((int(g[0]), int(g[1])) for g in groups)
        frame = pd.DataFrame(columns=list(cls.COLUMNS))
        return cls(cut, frame, dict(by_place), dict(offsets or {}))

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
        w = hedge_weights(loss, gap).round(6) if len(loss) else np.empty((0, len(EXPERTS)))
        out = self.state[["location_id", "horizon_group"]].copy()
        out[WEIGHT_COLS] = w
        return out

    def by_place(self) -> dict[str, list[list[float]]]:
        """location_id -> the served weights of each group (in `groups` order), for the
        snapshot."""
        if self.fixed is not None:
            return self.fixed
        rows = self.weights().itertuples(index=False)
        return self._per_place((loc, g, [float(v) for v in w]) for loc, g, *w in rows)

    def offsets_by_place(self) -> dict[str, list[list[float]]]:
        """location_id -> each group's own (lower, upper) offset (in `groups` order), rounded
        to 6 decimals as the weights are: the numbers batch serves and the snapshot carries."""
        if self.fixed_offsets is not None:
            return self.fixed_offsets
        rows = self.state[["location_id", "horizon_group", *OFFSET_COLS]].itertuples(index=False)
        return self._per_place(
            (loc, g, [round(float(lo), 6), round(float(hi), 6)]) for loc, g, lo, hi in rows
        )

    def _per_place(
        self, rows: Iterable[tuple[str, str, list[float]]]
    ) -> dict[str, list[list[float]]]:
        """location_id -> each group's values (in `groups` order) from (location_id,
        horizon_group, values) rows; a place missing a group is left out."""
        order = {group_name(g): k for k, g in enumerate(self.groups)}
        out: dict[str, list[list[float]]] = {}
        for loc, g, values in rows:
            out.setdefault(loc, [[] for _ in self.groups])[order[g]] = values
        return {k: v for k, v in out.items() if all(v)}

    def offsets_at(self, location_id: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lower and upper offsets of rows (place, horizon) of the places' own (0 for a
        place without a state): added to the target's at the row's horizon."""
        h = np.asarray(h, dtype=int)
        own = rows_from_places(
            self.offsets_by_place(), self.groups, location_id, h, np.zeros((len(h), 2))
        )
        return own[:, 0], own[:, 1]

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
        eta: float = 0.0,
    ) -> PlaceWeights:
        """The state after the verified hours of `losses` (one row per (location_id,
        target_ts, horizon_group) with a column per expert: the summed clipped losses of the
        place's forecasts of that group verified in that hour, and `n`), each place's hours
        after its own `verified_through` only, in time order. A place with losses and no
        state starts from `network` (`place_start`); a place with a state and no new hour
        keeps it (carried, so the next run reads one hour back). `issued`: the issue time
        a new place's state is started at (`started_at`; default `through`). `eta`: the step
        of the places' own interval offsets, on `losses`' `below` / `above` counts (0: the
        offsets stay as they are)."""
        names = [group_name(g) for g in self.groups]
        state = self.state.set_index(["location_id", "horizon_group"])
        losses = losses if len(losses) else pd.DataFrame(columns=["location_id", "target_ts"])
        losses = losses[losses["horizon_group"].isin(names)] if len(losses) else losses
        new = sorted(set(losses["location_id"].astype(str)) - set(self.state["location_id"]))
        if new:
            started = through if issued is None else issued
            rows = _started_rows(new, self.groups, network, started, version)
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
            _step_hours(state, frame, memory)
            _step_offsets(state, frame, eta)
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
