"""The per-place weights replayed over observed rows (`online_place_weights`): how predict
serves them (`common.forecasting.place_weights`), on arrays, so that a study or a test
can replay a year of hours in seconds and check it against predict's step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from common.forecasting.combination import (
    EXPERTS,
    LOSS_CAP,
    MEMORY_H,
    Weights,
    expert_changes,
    group_name,
    group_of,
    hedge_weights,
    horizon_groups,
    hourly_losses,
    issue_hours,
)
from common.forecasting.place_weights import place_start, step_rows


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
    groups: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """(n, N) the weights each row would have been served with per place: as
    `online_weights`, the network's state stepped before each issue hour by every place's
    hours verified by then, and each place's own state (started from the network's the
    first time the place has a verified hour) stepped by its own; a row of a place with
    no state yet gets the network's. How predict serves, replayed on observed rows
    (`groups`: the places' horizon groups, predict's by default; a study may try others)."""
    groups = horizon_groups(start.horizon) if groups is None else tuple(groups)
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
    for t, m in issue_hours(issued_at):
        when = t.tz_convert(None).to_datetime64()
        ready = int(np.searchsorted(net_hours, when, "right"))
        if ready > used:
            network = network.step(net.iloc[used:ready], None, memory)
            used = ready
        ready = int(np.searchsorted(own_hours, when, "right"))
        if ready > used_own:
            rows = np.arange(used_own, ready)
            fresh = np.unique(own_place[rows])
            new = fresh[~started[fresh]]
            if len(new):
                loss[new] = place_start(network, groups)
                started[new] = True
            _step_place_arrays(loss, gap, own_place[rows], own_group[rows], own_loss[rows],
                               own_hours[rows], keep_share)  # fmt: skip
            used_own = ready
        out[m] = _served(network, h[m], row_place[m], row_group[m], loss, gap, started)
    return out


def _step_place_arrays(
    loss: np.ndarray,
    gap: np.ndarray,
    place: np.ndarray,
    group: np.ndarray,
    hour_loss: np.ndarray,
    hours: np.ndarray,
    keep_share: float,
) -> None:
    """Step the (place, group) states of `loss` and `gap` (in place) on verified rows, hour
    by hour in time order: `_step_hours`' arithmetic on arrays, for the replay."""
    for hour in np.unique(hours):
        m = np.flatnonzero(hours == hour)
        p, g = place[m], group[m]
        sub_loss, sub_gap = loss[p, g], gap[p, g]
        step_rows(sub_loss, sub_gap, hour_loss[m], keep_share)
        loss[p, g], gap[p, g] = sub_loss, sub_gap


def _served(
    network: Weights,
    h: np.ndarray,
    place: np.ndarray,
    group: np.ndarray,
    loss: np.ndarray,
    gap: np.ndarray,
    started: np.ndarray,
) -> np.ndarray:
    """The weights rows of horizons `h` at `place` are served: their place's own where it
    has a state, else the network's."""
    served = network.at(h)
    mine = started[place] & (group >= 0)
    if mine.any():
        p, g = place[mine], group[mine]
        served[mine] = hedge_weights(loss[p, g], gap[p, g]).round(6)
    return served
