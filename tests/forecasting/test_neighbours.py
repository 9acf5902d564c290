"""The regional features' neighbours: at most NEIGHBOUR_K, the nearest within NEIGHBOUR_KM,
ties broken by location id, and a batch (its places plus `neighbours_of` them) sees exactly
the neighbours and floats of one run over the whole network, however dense it is."""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.forecasting.neighbours import (
    NEIGHBOUR_K,
    NEIGHBOUR_KM,
    Region,
    neighbour_features,
    neighbour_matrix,
    neighbours_of,
)
from common.sources.csv_files import BEIJING_STATIONS, beijing_location_id
from tests.conftest import SHARED_DATA

KM_PER_DEG_LAT = 6371.0 * np.pi / 180


def _places(ids: list[str], lat: np.ndarray, lon: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"location_id": ids, "latitude": lat, "longitude": lon})


def _row(m, i: int, ids: list[str]) -> list[str]:
    return [ids[j] for j in m.indices[m.indptr[i] : m.indptr[i + 1]]]


def _dense(n: int, seed: int) -> pd.DataFrame:
    """n places in a 1 x 1 degree box: every one has far more than NEIGHBOUR_K within
    NEIGHBOUR_KM."""
    rng = np.random.default_rng(seed)
    ids = [f"loc-{i:04d}" for i in rng.permutation(n)]  # ids not in coordinate order
    return _places(ids, rng.uniform(45, 46, n).round(4), rng.uniform(5, 6, n).round(4))


def test_a_place_keeps_its_nearest_k_ties_broken_by_id():
    # A centre, NEIGHBOUR_K + 8 places on a ring 10 km north (equal distances: the ties),
    # and nearer / farther ones at unequal distances.
    ring = NEIGHBOUR_K + 8
    ids = ["centre"] + [f"ring-{i:02d}" for i in range(ring)] + ["near-a", "near-b", "far"]
    deg = 10 / KM_PER_DEG_LAT
    lat = np.r_[45.0, np.full(ring, 45.0 + deg), 45.0 + deg / 4, 45.0 - deg / 2, 45.0 + 5 * deg]
    lon = np.r_[5.0, np.full(ring, 5.0), 5.0, 5.0, 5.0]
    places = _places(ids, lat, lon)
    order = sorted(ids)  # columns in id order, as the grids have them
    m = neighbour_matrix(order, places, rows=["centre"])
    got = _row(m, 0, order)
    assert len(got) == NEIGHBOUR_K
    # The two nearer ones, then the ring by id up to the cap; "far" and the ring's last
    # (largest) ids are dropped.
    want = ["near-a", "near-b"] + [f"ring-{i:02d}" for i in range(NEIGHBOUR_K - 2)]
    assert sorted(got) == sorted(want)
    assert got == sorted(got)  # stored in id order
    # The same rule whatever order the ids come in.
    shuffled = list(reversed(ids))
    assert sorted(_row(neighbour_matrix(shuffled, places, rows=["centre"]), 0, shuffled)) == sorted(
        want
    )
    assert sorted(neighbours_of(["centre"], places)) == sorted(want)


def test_the_cap_keeps_the_nearest_of_a_dense_network():
    places = _dense(600, seed=1)
    ids = sorted(places["location_id"])
    m = neighbour_matrix(ids, places)
    assert m.indices.dtype == np.int32 and m.indptr.dtype == np.int32
    assert (np.diff(m.indptr) == NEIGHBOUR_K).all()
    p = places.set_index("location_id").loc[ids]
    lat, lon = np.radians(p["latitude"].to_numpy()), np.radians(p["longitude"].to_numpy())
    for i in (0, 77, 599):
        h = (
            np.sin((lat - lat[i]) / 2) ** 2
            + np.cos(lat) * np.cos(lat[i]) * np.sin((lon - lon[i]) / 2) ** 2
        )
        km = 2 * 6371.0 * np.arcsin(np.sqrt(h))
        km[i] = np.inf
        nearest = set(np.argsort(km, kind="stable")[:NEIGHBOUR_K])
        assert set(m.indices[m.indptr[i] : m.indptr[i + 1]]) == nearest
        assert km[list(nearest)].max() < NEIGHBOUR_KM


def test_a_batch_sees_the_whole_dense_networks_neighbours_and_floats():
    places = _dense(500, seed=2)
    ids = places["location_id"].tolist()  # the whole grid in the table's order, not sorted
    rng = np.random.default_rng(3)
    ly = rng.normal(3, 1, (len(ids), 8))
    ly[rng.random(ly.shape) < 0.2] = np.nan
    whole = Region(ly, neighbour_matrix(ids, places))
    for batch in (sorted(rng.choice(ids, 7, replace=False)), ids[:40]):
        near = neighbours_of(batch, places)
        assert not set(near) & set(batch) and len(near) < len(ids) - len(batch)
        # As region_of builds it: the batch and its neighbours in id order.
        every = sorted(set(batch) | set(near))
        sub = places[places["location_id"].isin(every)]
        pos = pd.Index(ids).get_indexer(every)
        part = Region(ly[pos], neighbour_matrix(every, sub, rows=batch))
        for r, loc_id in enumerate(batch):
            assert _row(part.rows, r, every) == sorted(_row(whole.rows, ids.index(loc_id), ids))
        t = np.full(len(batch), 7)
        level = rng.normal(3, 1, len(batch))
        got = neighbour_features(part, np.arange(len(batch)), t, level)
        want = neighbour_features(whole, pd.Index(ids).get_indexer(batch), t, level)
        for name, values in want.items():
            np.testing.assert_array_equal(got[name], values, err_msg=name)


def test_a_network_sparser_than_k_keeps_every_place_within_range():
    # NEIGHBOUR_K places together (NEIGHBOUR_K - 1 neighbours each: under the cap) and two far
    # away, near each other: every place within NEIGHBOUR_KM counts, as without a cap.
    rng = np.random.default_rng(4)
    n = NEIGHBOUR_K + 2
    ids = [f"p{i:02d}" for i in range(n)]
    lat = np.r_[rng.uniform(45, 45.3, n - 2), 48.0, 48.01]
    lon = np.r_[rng.uniform(5, 5.3, n - 2), 5.0, 5.0]
    places = _places(ids, lat, lon)
    m = neighbour_matrix(ids, places)
    for i in range(n - 2):
        assert _row(m, i, ids) == [x for x in ids[: n - 2] if x != ids[i]]
    assert _row(m, n - 2, ids) == [ids[n - 1]] and _row(m, n - 1, ids) == [ids[n - 2]]


def test_the_beijing_stations_keep_every_neighbour():
    # ../shared/data's stations (8, each within 100 km of the 7 others): the cap changes
    # nothing there, so the Beijing benchmark's features are those it had before.
    files = sorted((SHARED_DATA / "beijing-multisite").glob("PRSA_Data_*.csv"))
    stations = [f.name.split("_")[2] for f in files]
    assert len(stations) == 8
    ids = sorted(beijing_location_id(s) for s in stations)
    lat, lon = zip(*(BEIJING_STATIONS[s] for s in stations), strict=True)
    places = _places([beijing_location_id(s) for s in stations], np.array(lat), np.array(lon))
    m = neighbour_matrix(ids, places)
    for i, loc_id in enumerate(ids):
        assert _row(m, i, ids) == [x for x in ids if x != loc_id]
