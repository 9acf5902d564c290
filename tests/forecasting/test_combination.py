"""The online combination of the model with the baselines (common.forecasting.combination)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.forecasting.combination import (
    EXPERTS,
    HELD_BACK_WEIGHT,
    LOSS_CAP,
    Weights,
    combine,
    expert_changes,
    hourly_losses,
    learn,
    online_weights,
    regret_bound,
)

H = 3


def _stream(
    hours: int, locations: int, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, pd.Series, np.ndarray]:
    """A stream where the model wins at horizon 1 and loses badly at 2 and 3, and the
    series has a daily cycle (seasonal naive beats persistence at horizon 3)."""
    rng = np.random.default_rng(seed)
    n = hours * locations * H
    h = np.tile(np.arange(1, H + 1), hours * locations)
    hour = np.repeat(np.arange(hours), locations * H)
    truth = rng.normal(0.0, 0.15, n) + 0.2 * np.sin(hour / 24 * 2 * np.pi) * (h == 3)
    seasonal = truth + rng.normal(0.0, 0.1, n)  # the same hour yesterday: close
    model = np.where(h == 1, truth + rng.normal(0.0, 0.05, n), truth + rng.normal(0.4, 0.2, n))
    X = pd.DataFrame({"horizon_h": h.astype(float), "seasonal_24": seasonal})
    ts = pd.Series(pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(hour + h, unit="h"))
    return X, truth, ts, model


def _loss(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.minimum(np.abs(x - y), LOSS_CAP) / LOSS_CAP


def test_the_combination_stays_within_the_regret_bound_of_the_best_expert() -> None:
    """Served hour by hour with the weights known before the hour: over the run the
    combination's loss is within the bound of the best expert's at every horizon, and far
    below the model's where the model loses."""
    hours, locs = 400, 20
    X, y, ts, model = _stream(hours, locs)
    w = Weights.uniform(H)
    served = np.empty(len(y))
    order = np.argsort(ts.to_numpy(), kind="stable")
    per_hour = len(y) // hours
    for i in range(hours):  # each issue hour is served, then its targets verified
        rows = order[i * per_hour : (i + 1) * per_hour]
        served[rows] = combine(model[rows], X.iloc[rows], w)
        w = w.step(hourly_losses(model[rows], X.iloc[rows], y[rows], ts.iloc[rows]), None)
    experts = expert_changes(model, X)
    for k in range(1, H + 1):
        m = X["horizon_h"].to_numpy() == k
        t_hours = pd.Series(ts[m].to_numpy())
        combined = pd.Series(_loss(served[m], y[m])).groupby(t_hours).sum().sum()
        per_expert = [
            pd.Series(_loss(experts[m, e], y[m])).groupby(t_hours).sum()
            for e in range(len(EXPERTS))
        ]
        scale = max(float(p.max()) for p in per_expert)
        best = min(float(p.sum()) for p in per_expert)
        assert combined <= best + regret_bound(t_hours.nunique(), scale)
        model_loss = pd.Series(_loss(model[m], y[m])).groupby(t_hours).sum().sum()
        if k > 1:  # where the model loses, the combination is served the baselines
            assert combined < 0.5 * model_loss
    # And the weights say so: the model leads at horizon 1 and is nearly dropped at 3.
    final = w.matrix()
    assert final[0].argmax() == EXPERTS.index("model")
    assert final[2, EXPERTS.index("model")] < 0.05


def test_a_first_version_that_loses_starts_from_baseline_weights() -> None:
    """Weights learned on a calibration block where the model loses serve the baselines
    from the first hour, without any online history."""
    X, y, ts, model = _stream(200, 10, seed=1)
    w = learn(model, X, y, ts, H)
    m3 = (X["horizon_h"] == 3).to_numpy()
    served = combine(model[m3], X[m3], w)
    assert np.mean(np.abs(served - y[m3])) < 0.6 * np.mean(np.abs(model[m3] - y[m3]))
    assert np.mean(np.abs(served - y[m3])) <= np.mean(np.abs(0.0 - y[m3])) + 0.01


def test_a_version_started_as_persistence_serves_it_and_comes_back_to_a_winning_model() -> None:
    """`as_persistence`: at the horizons named, persistence has all but HELD_BACK_WEIGHT
    of each other expert's weight, so the served change is persistence's (none) to within
    that; elsewhere the state is untouched. It is an ordinary state: hours where the model
    is steadily better (by 0.05 on each of 100 forecasts) hand the weight back to it."""
    X, y, ts, model = _stream(40, 5, seed=4)
    start = learn(model, X, y, ts, H)
    held = start.as_persistence([2, 3])
    w = held.matrix()
    assert np.allclose(w[0], start.matrix()[0])  # horizon 1 untouched
    assert (w[1:, EXPERTS.index("model")] <= HELD_BACK_WEIGHT * 1.01).all()  # at most
    assert (w[1:, EXPERTS.index("persistence")] > 1 - 3 * HELD_BACK_WEIGHT).all()
    m2 = (X["horizon_h"] == 2).to_numpy()
    spread = np.abs(np.column_stack([model[m2], X["seasonal_24"].to_numpy()[m2]])).max()
    assert np.abs(combine(model[m2], X[m2], held)).max() < 3 * HELD_BACK_WEIGHT * spread
    again = Weights.from_json(held.to_json())  # stored in the metadata as any start is
    assert np.allclose(again.matrix(), w)
    hours = pd.date_range("2026-02-01", periods=48, freq="h", tz="UTC")
    winning = pd.DataFrame(
        {"target_ts": hours, "horizon_h": 2, "model": 10.0, "persistence": 15.0,
         "seasonal_naive": 20.0}
    )  # fmt: skip
    even = Weights.uniform(H).as_persistence([2])  # from equal weights: exactly the share
    assert even.matrix()[1] == pytest.approx(
        [HELD_BACK_WEIGHT, 1 - 2 * HELD_BACK_WEIGHT, HELD_BACK_WEIGHT], rel=0.01
    )
    assert even.step(winning.iloc[:4], None).matrix()[1, 0] < 0.5  # not at once
    assert even.step(winning.iloc[:12], None).matrix()[1, 0] > 0.5  # half a day: it leads
    assert even.step(winning, None).matrix()[1, 0] > 0.99


def test_a_missing_expert_shares_its_weight() -> None:
    X = pd.DataFrame({"horizon_h": [1.0, 1.0], "seasonal_24": [1.0, np.nan]})
    w = np.array([[0.5, 0.25, 0.25]] * 2)
    out = combine(np.array([2.0, 2.0]), X, w)
    assert out[0] == pytest.approx(0.5 * 2 + 0.25 * 0 + 0.25 * 1)
    assert out[1] == pytest.approx((0.5 * 2 + 0.25 * 0) / 0.75)


def test_weights_round_trip_through_json_and_rows() -> None:
    X, y, ts, model = _stream(30, 4, seed=3)
    w = learn(model, X, y, ts, H)
    w = Weights(w.losses, w.gaps, pd.Timestamp("2026-01-01T05:00Z").to_pydatetime())
    again = Weights.from_json(w.to_json())
    assert np.allclose(again.matrix(), w.matrix()) and again.gaps == w.gaps
    assert again.verified_through == w.verified_through
    back = Weights.from_rows(w.rows(), H)
    assert np.allclose(back.matrix(), w.matrix())
    assert back.verified_through == w.verified_through
    # An older document without an expert still loads: the missing one gets the worst
    # loss seen beside it, so it starts with no more weight than the worst.
    old = {
        "experts": ["model", "persistence"],
        "verified_through": None,
        "losses": [[1.0, 3.0]],
        "gaps": [0.5],
    }
    m = Weights.from_json(old).matrix()[0]
    assert m[2] <= m[1] < m[0]


def test_a_steadily_better_expert_is_followed_and_turns_are_hedged() -> None:
    """AdaHedge's rate is learned: over a day of hours of 100 forecasts each, one expert
    steadily best (by 0.05 a forecast) gets nearly all the weight; experts taking turns
    keep the weights spread; a few forecasts move them little (the rate's cap)."""
    hours = pd.date_range("2026-01-01", periods=24, freq="h", tz="UTC")
    steady = pd.DataFrame(
        {"target_ts": hours, "horizon_h": 1, "model": 20.0, "persistence": 25.0,
         "seasonal_naive": 40.0}
    )  # fmt: skip
    w = Weights.uniform(1).step(steady, None).matrix()[0]
    assert w[0] > 0.95
    turns = steady.assign(
        model=np.where(np.arange(24) % 2, 0.1, 0.4),
        persistence=np.where(np.arange(24) % 2, 0.4, 0.1),
    )
    w = Weights.uniform(1).step(turns, None).matrix()[0]
    assert 0.3 < w[0] < 0.7 and 0.3 < w[1] < 0.7


def test_a_step_ignores_hours_without_every_loss_and_unknown_horizons() -> None:
    w = Weights.uniform(2)
    losses = pd.DataFrame(
        {
            "target_ts": pd.to_datetime(["2026-01-01T01:00Z"] * 3),
            "horizon_h": [1, 2, 5],
            "model": [0.0, np.nan, 0.0],
            "persistence": [1.0, 1.0, 1.0],
            "seasonal_naive": [1.0, 1.0, 1.0],
        }
    )
    after = w.step(losses, None).matrix()
    assert after[0, 0] > after[0, 1]
    assert np.allclose(after[1], 1 / 3)


def test_online_weights_use_only_hours_verified_before_each_issue_time() -> None:
    """Replayed on a holdout, a row's weights come from hours at or before its issue time:
    changing what happened after it changes nothing."""
    X, y, ts, model = _stream(60, 5, seed=2)
    h = X["horizon_h"].to_numpy().astype(int)
    issued = ts - pd.to_timedelta(h, unit="h")
    start = Weights.uniform(H)
    w = online_weights(model, X, y, issued, ts, start)
    assert np.allclose(w[issued == issued.min()], 1 / 3)  # nothing verified before the first
    cut = issued.iloc[len(issued) // 2]
    later = (ts > cut).to_numpy()
    y2 = y.copy()
    y2[later] += 5.0  # the future changes
    w2 = online_weights(model, X, y2, issued, ts, start)
    before = (issued <= cut).to_numpy()
    assert np.allclose(w[before], w2[before])
    assert not np.allclose(w[~before], w2[~before])


def _places_stream(hours: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """24 horizons at three places: the model wins at "a" and "b" and loses at "stuck"
    (a sensor whose value stays put: persistence and seasonal naive are exact there)."""
    from common.forecasting.combination import horizon_groups

    rng = np.random.default_rng(seed)
    places, horizon = ["a", "b", "stuck"], 24
    assert horizon_groups(horizon) == ((1, 3), (4, 12), (13, 24))
    rows = pd.MultiIndex.from_product(
        [places, range(hours), range(1, horizon + 1)], names=["location_id", "hour", "horizon_h"]
    ).to_frame(index=False)
    n = len(rows)
    stuck = (rows["location_id"] == "stuck").to_numpy()
    truth = np.where(stuck, 0.0, rng.normal(0.0, 0.3, n))
    model = np.where(stuck, rng.normal(0.0, 0.3, n), truth + rng.normal(0.0, 0.05, n))
    seasonal = np.where(stuck, 0.0, truth + rng.normal(0.0, 0.4, n))
    X = pd.DataFrame({"horizon_h": rows["horizon_h"].astype(float), "seasonal_24": seasonal})
    issued = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rows["hour"], unit="h")
    keys = pd.DataFrame(
        {
            "location_id": rows["location_id"],
            "issued_at": issued,
            "target_ts": issued + pd.to_timedelta(rows["horizon_h"], unit="h"),
            "model": model,
        }
    )
    return X, truth, keys


def test_each_place_learns_its_own_weights_within_its_regret_bound() -> None:
    """Per place and horizon group: where the model loses (a stuck sensor) the place comes
    to serve the baselines while the others keep the model the network follows; each
    place's served loss stays within the regret bound of its best expert, the start's
    head start included."""
    from common.forecasting.combination import horizon_groups
    from common.forecasting.place_replay import online_place_weights
    from common.forecasting.place_weights import PLACE_HEAD_START

    X, y, keys = _places_stream(120)
    model = keys["model"].to_numpy()
    start = Weights.uniform(24)
    w = online_place_weights(
        model, X, y, keys["issued_at"], keys["target_ts"], keys["location_id"], start
    )
    net = online_weights(model, X, y, keys["issued_at"], keys["target_ts"], start)
    last = (keys["issued_at"] == keys["issued_at"].max()).to_numpy()
    loc = keys["location_id"].to_numpy()
    m = EXPERTS.index("model")
    assert (net[last, m] > 0.5).all()  # the network, two places out of three, keeps the model
    assert (w[last & (loc == "stuck"), m] < 0.01).all()
    assert (w[last & (loc == "a"), m] > 0.9).all() and (w[last & (loc == "b"), m] > 0.9).all()
    # Within the bound, per place and group, on the hours each served (the losses summed
    # over the group's horizons are the hourly losses the bound is stated for).
    x = expert_changes(model, X)
    err = np.minimum(np.abs(x - y[:, None]), LOSS_CAP)
    served = (w * err).sum(axis=1)
    h = X["horizon_h"].to_numpy()
    for place in ("a", "b", "stuck"):
        for a, b in horizon_groups(24):
            g = (loc == place) & (h >= a) & (h <= b)
            frame = pd.DataFrame(err[g], columns=list(EXPERTS)).assign(
                served=served[g], t=keys["target_ts"].to_numpy()[g]
            )
            hourly = frame.groupby("t").sum()
            best = hourly[list(EXPERTS)].sum().min()
            bound = regret_bound(len(hourly), b - a + 1, head_start=PLACE_HEAD_START)
            assert hourly["served"].sum() <= best + bound, (place, a, b)
    stuck = loc == "stuck"  # served far below the model's loss there
    assert served[stuck].sum() < 0.2 * err[stuck, m].sum()


def test_a_new_place_is_served_the_network_weights_then_its_own() -> None:
    """A place with no state is served the network's weights at every horizon; its state
    starts from them (each group's mean, floored) and then moves with its own losses."""
    from common.forecasting.combination import horizon_groups
    from common.forecasting.place_replay import place_hourly_losses
    from common.forecasting.place_weights import PLACE_START_FLOOR, PlaceWeights

    X, y, keys = _places_stream(40)
    model = keys["model"].to_numpy()
    network = learn(model, X, y, keys["target_ts"], 24)
    places = PlaceWeights.empty(24)
    h = np.arange(1, 25)
    new = np.array(["new"] * 24)
    assert np.allclose(places.at(new, h, network), network.at(h))
    # Started with no loss of its own: the network's weights per group, floored.
    t = pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime()  # before its first hour
    empty_hour = pd.DataFrame(
        {"location_id": ["new"], "target_ts": [t], "horizon_group": ["1-3"], "n": [0]}
        | {e: [0.0] for e in EXPERTS}
    )
    started = places.step(empty_hour, network, t, "v1", memory=0)
    got = started.at(new, h, network)
    for a, b in horizon_groups(24):
        want = np.maximum(network.matrix()[a - 1 : b].mean(axis=0), PLACE_START_FLOOR)
        assert np.allclose(got[a - 1 : b], want / want.sum(), atol=1e-5), (a, b)
    # Then its own: the stuck place's hours, relabelled as the new place's, move it.
    own = place_hourly_losses(
        model, X, y, keys["target_ts"], keys["location_id"], horizon_groups(24)
    )
    own = own[own["location_id"] == "stuck"].assign(location_id="new")
    later = started.step(own, network, own["target_ts"].max().to_pydatetime(), "v1")
    assert (later.at(new, h, network)[:, EXPERTS.index("model")] < 0.01).all()
    assert set(later.state["started_at"]) == {t}
    # A place that got no new hour is carried as it was; hours already verified are not
    # counted twice.
    again = later.step(own, network, own["target_ts"].max().to_pydatetime(), "v1")
    pd.testing.assert_frame_equal(again.state, later.state)
    by_place = later.by_place()
    served = PlaceWeights.served(later.groups, by_place)
    assert np.allclose(served.at(new, h, network), later.at(new, h, network))


def test_the_replay_per_place_serves_what_predict_would() -> None:
    """`online_place_weights` (the studies' replay, arrays) serves each row what stepping
    `PlaceWeights` hour by hour (predict's step) serves it."""
    from common.forecasting.combination import horizon_groups
    from common.forecasting.place_replay import online_place_weights, place_hourly_losses
    from common.forecasting.place_weights import PlaceWeights

    X, y, keys = _places_stream(30, seed=3)
    model = keys["model"].to_numpy()
    start = Weights.uniform(24)
    got = online_place_weights(
        model, X, y, keys["issued_at"], keys["target_ts"], keys["location_id"], start
    )
    net = hourly_losses(model, X, y, keys["target_ts"])
    own = place_hourly_losses(
        model, X, y, keys["target_ts"], keys["location_id"], horizon_groups(24)
    )
    places = PlaceWeights.empty(24)
    for t in sorted(keys["issued_at"].unique()):
        m = (keys["issued_at"] == t).to_numpy()
        done_net = net[net["target_ts"] <= t]
        network = start.step(done_net, None)
        places = places.step(own[own["target_ts"] <= t], network, pd.Timestamp(t).to_pydatetime())
        want = places.at(keys["location_id"].to_numpy()[m], X["horizon_h"].to_numpy()[m], network)
        assert np.allclose(got[m], want, atol=2e-6), t
