"""Each place's own interval offsets (common.forecasting.place_weights): stepped by adaptive
conformal inference on the place's own verified forecasts, kept beside its weights, served
on top of the target's offsets."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from common.forecasting.adaptation import MAX_OFFSET, TAIL
from common.forecasting.combination import EXPERTS, Weights, group_name, horizon_groups
from common.forecasting.model import widened
from common.forecasting.place_weights import OFFSET_COLS, PlaceWeights

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
GROUPS = [group_name(g) for g in horizon_groups(24)]


def _hour(t: dt.datetime, counts: dict[tuple[str, str], tuple[int, int, int]]) -> pd.DataFrame:
    """One verified hour: per (place, group) (n, below, above), equal expert losses."""
    rows = [
        {"location_id": loc, "target_ts": t, "horizon_group": g, "n": n, "below": lo, "above": hi}
        | {e: 0.1 * n for e in EXPERTS}
        for (loc, g), (n, lo, hi) in counts.items()
    ]
    return pd.DataFrame(rows)


def test_a_place_steps_its_own_offsets_by_its_miss_share_hour_by_hour() -> None:
    """Each verified hour moves a place's group offsets by eta x (miss share - 10 %), the
    bounds apart, clipped at MAX_OFFSET; other places and groups stay at 0; eta 0 leaves
    them; an hour already verified is not counted twice."""
    eta = 0.05
    network = Weights.uniform(24)
    state = PlaceWeights.empty(24)
    first = _hour(T0, {("a", "4-12"): (9, 0, 9), ("b", "1-3"): (3, 1, 0)})
    second = _hour(T0 + HOUR, {("a", "4-12"): (9, 0, 0)})
    state = state.step(pd.concat([first, second]), network, T0 + HOUR, "v1", eta=eta)
    by = state.state.set_index(["location_id", "horizon_group"])[OFFSET_COLS]
    # a's 4-12: below never (0 - 0.1) twice; above every forecast then none.
    assert by.loc[("a", "4-12"), "lower_offset"] == pytest.approx(2 * eta * (0 - TAIL))
    assert by.loc[("a", "4-12"), "upper_offset"] == pytest.approx(eta * (1 - TAIL) - eta * TAIL)
    assert by.loc[("b", "1-3"), "lower_offset"] == pytest.approx(eta * (1 / 3 - TAIL))
    untouched = [("a", "1-3"), ("a", "13-24"), ("b", "4-12"), ("b", "13-24")]
    assert (by.loc[untouched].to_numpy() == 0).all()
    again = state.step(second, network, T0 + HOUR, "v1", eta=eta)
    pd.testing.assert_frame_equal(
        again.state.reset_index(drop=True), state.state.reset_index(drop=True)
    )
    frozen = PlaceWeights.empty(24).step(first, network, T0, "v1", eta=0.0)
    assert (frozen.state[OFFSET_COLS].to_numpy() == 0).all()
    # Clipped: a place that misses every forecast for long stops at MAX_OFFSET.
    hours = [_hour(T0 + k * HOUR, {("c", "1-3"): (3, 3, 3)}) for k in range(200)]
    far = PlaceWeights.empty(24).step(pd.concat(hours), network, T0 + 199 * HOUR, eta=0.1)
    assert (far.state.set_index("location_id").loc["c", OFFSET_COLS] <= MAX_OFFSET).all().all()
    assert far.state.set_index(["location_id", "horizon_group"]).loc[
        ("c", "1-3"), "lower_offset"
    ] == pytest.approx(MAX_OFFSET)


def test_served_offsets_add_to_the_targets_and_round_trip_through_the_snapshot_form() -> None:
    """`offsets_at` gives a place's group offsets at each horizon (0 for a place without a
    state); the snapshot's form (`offsets_by_place`) serves the same numbers; rows stored
    before places had offsets read as 0."""
    network = Weights.uniform(24)
    hour = _hour(T0, {("a", "13-24"): (12, 0, 12)})
    state = PlaceWeights.empty(24).step(hour, network, T0, "v1", eta=0.02)
    h = np.arange(1, 25)
    lo, hi = state.offsets_at(np.array(["a"] * 24), h)
    assert (lo[:12] == 0).all() and (hi[:12] == 0).all()
    assert lo[12:] == pytest.approx(np.full(12, 0.02 * -TAIL))
    assert hi[12:] == pytest.approx(np.full(12, 0.02 * (1 - TAIL)))
    none_lo, none_hi = state.offsets_at(np.array(["elsewhere"] * 24), h)
    assert (none_lo == 0).all() and (none_hi == 0).all()
    served = PlaceWeights.served(state.groups, state.by_place(), state.offsets_by_place())
    assert np.allclose(np.column_stack(served.offsets_at(np.array(["a"] * 24), h)),
                       np.column_stack((lo, hi)))  # fmt: skip
    old = state.rows().drop(columns=OFFSET_COLS)  # a row written before these columns
    assert (PlaceWeights.from_rows(old, 24).state[OFFSET_COLS].to_numpy() == 0).all()


def test_a_place_whose_band_is_too_wide_is_brought_to_its_nominal_coverage() -> None:
    """A place whose calibrated band covers ~95 % (the network's width, too wide for it)
    and one whose band covers ~50 % are each brought toward 80 % by their own offsets,
    served hour by hour as predict serves (`widened`), within adaptive conformal
    inference's bound on each bound's miss share over the hours."""
    rng = np.random.default_rng(0)
    eta, hours, n = 0.2, 600, 12  # the 13-24 h group: 12 forecasts an hour
    network = Weights.uniform(24)
    state = PlaceWeights.empty(24)
    widths = {"wide": 2.0, "narrow": 0.7}  # bands of +-width around a N(0, 1) truth
    misses = {p: np.zeros(2) for p in widths}
    h = np.arange(13, 25)
    for k in range(hours):
        t = T0 + k * HOUR
        counts = {}
        for place, w in widths.items():
            lo, hi = state.offsets_at(np.array([place] * n), h)
            q = np.column_stack([np.full(n, -w), np.zeros(n), np.full(n, w)])
            band = widened(q, lo, hi)
            y = rng.normal(0.0, 1.0, n)
            below, above = int((y < band[:, 0]).sum()), int((y > band[:, 2]).sum())
            misses[place] += (below, above)
            counts[(place, "13-24")] = (n, below, above)
        state = state.step(_hour(t, counts), network, t, "v1", eta=eta)
    bound = (2 * MAX_OFFSET + eta) / (eta * hours)
    for place in widths:
        share = misses[place] / (hours * n)
        assert np.all(np.abs(share - TAIL) <= bound), (place, share, bound)
    by = state.state.set_index(["location_id", "horizon_group"])
    assert by.loc[("wide", "13-24"), "lower_offset"] < -0.5  # narrowed
    assert by.loc[("narrow", "13-24"), "upper_offset"] > 0.3  # widened
