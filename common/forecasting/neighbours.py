"""The regional features: what the NEIGHBOUR_K nearest locations within NEIGHBOUR_KM show at
t (pollution episodes travel), and which locations a batch must read so its regional features
are those of the whole network."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.neighbors import BallTree

from common.forecasting.grid import Grid, at

NEIGHBOUR_KM = 100.0  # other locations this close describe the regional situation
NEIGHBOUR_K = 32
"""At most this many neighbours per location: the nearest within NEIGHBOUR_KM, ties by
distance broken by location id. The features are a mean, a max and a count of the
neighbours' levels; the mean's noise falls as 1/sqrt(k), so past a few dozen stations more of
them add little (32 leave 18 % of one station's noise) while they still cost memory and time
per location. Without a cap both follow the network's density (a dense national network has
~570 places within 100 km of each: 57 M pairs at 100,000 locations, 4.4 GB to build); with
it they follow N x NEIGHBOUR_K. Sparse networks are untouched (../shared/data's 8 Beijing
stations: at most 7 neighbours each)."""
_CHUNK_ROWS = 4096  # rows per tree query: bounds what one query holds, whatever N is
_EARTH_KM = 6371.0
REGION_LAGS = (1, 3, 6)  # hours back the regional features compare the neighbours' mean with
REGION_HOURS = max(REGION_LAGS) + 1  # the neighbours' hours they read: t - 6 .. t


@dataclass(frozen=True)
class Region:
    """What the regional features read: the log target of a set of locations on the grid's
    hours (`ly`, one row per location) and, per grid row, its neighbours among them
    (`rows`: grid locations x region locations, 0/1). Usually the grid itself; a predict
    batch passes its neighbours' target alone, so it need not load their other columns
    nor build their features."""

    ly: np.ndarray
    rows: sparse.csr_matrix


def region_of(
    grid: Grid,
    target: str,
    obs: pd.DataFrame,
    places: pd.DataFrame,
    nb_places: pd.DataFrame,
    nb_obs: pd.DataFrame,
    start: dt.datetime,
    end: dt.datetime,
) -> Region:
    """The grid's locations and their outside neighbours, target only, in id order (the
    order the whole network's grid has: each row sums its neighbours in the same order, so
    a batch gets the same floats as one run over everything)."""
    every = pd.concat([places, nb_places]).drop_duplicates("location_id")
    ids = sorted(every["location_id"].astype(str))
    frame = pd.concat([obs[["location_id", "ts", target]], nb_obs[["location_id", "ts", target]]])
    wide = Grid.from_frame(frame, start, end, ids, [target])
    ly = np.log1p(np.clip(wide.values[target], 0, None))
    return Region(ly, neighbour_matrix(ids, every, rows=grid.location_ids))


def neighbour_features(
    region: Region, loc: np.ndarray, t: np.ndarray, level: np.ndarray
) -> dict[str, np.ndarray]:
    """The regional picture at t: other locations within NEIGHBOUR_KM, their mean level
    relative to this one and their mean recent change (pollution episodes travel)."""
    w, ly = region.rows, region.ly
    valid = ~np.isnan(ly)
    x = np.where(valid, ly, 0.0)
    cnt = np.asarray(w @ valid.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, np.asarray(w @ x) / cnt, np.nan)
    out = {"nb_level": at(mean, loc, t) - level, "nb_count": at(cnt, loc, t)}
    for k in REGION_LAGS:
        out[f"nb_d{k}"] = at(mean, loc, t) - at(mean, loc, t - k)
    out["nb_max"] = _neighbour_max(w.tocsr(), ly, loc, t) - level
    return out


def _neighbour_max(
    rows: sparse.csr_matrix, ly: np.ndarray, loc: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Per (location, hour) pair, the highest value among the location's neighbours at that
    hour (NaN when none is observed): one gather over all pairs x neighbours, then a
    NaN-ignoring max per pair."""
    loc, t = np.asarray(loc), np.asarray(t)
    counts = np.diff(rows.indptr)[loc]
    nb_max = np.full(len(loc), np.nan)
    total = int(counts.sum())
    if total == 0:
        return nb_max
    first = np.cumsum(counts) - counts  # offset of each pair's run in the gathered values
    pair = np.repeat(np.arange(len(loc)), counts)
    offset = np.arange(total) - np.repeat(first, counts)
    neighbours = rows.indices[np.repeat(rows.indptr[loc], counts) + offset]
    values = ly[neighbours, t[pair]]
    has = counts > 0
    nb_max[has] = np.fmax.reduceat(values, first[has])
    return nb_max


def neighbour_matrix(
    location_ids: Sequence[str], places: pd.DataFrame, rows: Sequence[str] | None = None
) -> sparse.csr_matrix:
    """0/1 matrix: [i, j] = 1 when location j is one of the NEIGHBOUR_K nearest to i within
    NEIGHBOUR_KM (j != i; ties by distance broken by location id); one row per id of `rows`
    (default: every location), one column per location.

    The rule depends on the two places alone (distances computed here, not by the tree), so
    a batch built over its own places and `neighbours_of` them gets each row's exact
    neighbours, stored in location id order: its row sums are the whole network's floats.
    Built directly as CSR (int32) in chunks of rows: memory O(N x NEIGHBOUR_K), not the
    number of pairs within NEIGHBOUR_KM."""
    n = len(location_ids)
    p = places.drop_duplicates("location_id").set_index("location_id")
    lat = pd.to_numeric(p["latitude"].reindex(location_ids), errors="coerce").to_numpy(float)
    lon = pd.to_numeric(p["longitude"].reindex(location_ids), errors="coerce").to_numpy(float)
    known = np.flatnonzero(~np.isnan(lat) & ~np.isnan(lon))
    at = np.arange(n) if rows is None else pd.Index(location_ids).get_indexer(list(rows))
    asked = np.flatnonzero(np.isin(at, known))  # the rows with a known place
    if len(known) < 2 or len(asked) == 0:
        return sparse.csr_matrix((len(at), n))
    rad = np.radians(np.c_[lat, lon])
    tree = BallTree(rad[known], metric="haversine")
    rank = np.empty(n, np.int64)  # each column's place in location id order: the tie-break
    rank[np.argsort(np.asarray(location_ids, dtype=str), kind="stable")] = np.arange(n)
    counts = np.zeros(len(at), np.int32)
    cols: list[np.ndarray] = []
    for c0 in range(0, len(asked), _CHUNK_ROWS):
        chunk = asked[c0 : c0 + _CHUNK_ROWS]
        kept, lens = _nearest(tree, known, rad, rank, at[chunk])
        counts[chunk] = lens
        cols.append(kept)
    indptr = np.zeros(len(at) + 1, np.int32)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(cols).astype(np.int32)
    data = np.ones(len(indices))
    return sparse.csr_matrix((data, indices, indptr), shape=(len(at), n))


def _nearest(
    tree: BallTree, known: np.ndarray, rad: np.ndarray, rank: np.ndarray, own: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For the columns `own` (a chunk of rows' own places): the columns of each one's
    NEIGHBOUR_K nearest within NEIGHBOUR_KM, concatenated row after row in id order, and how
    many each has. The tree only proposes candidates: the k + 1 nearest give a radius that
    holds at least k others, and everything within it (a little wider, so the tree's rounding
    loses none) is ranked by distances computed here, then by id."""
    limit = NEIGHBOUR_KM / _EARTH_KM
    k = min(NEIGHBOUR_K + 1, len(known))  # + 1: the place itself
    far, _ = tree.query(rad[own], k=k)
    radius = np.minimum(far[:, -1], limit) * (1 + 1e-9) + 1e-12
    hits = tree.query_radius(rad[own], radius)
    lens = np.fromiter((len(h) for h in hits), np.int64, len(hits))
    row = np.repeat(np.arange(len(own)), lens)
    col = known[np.concatenate(hits)]
    dist = _haversine(rad[own[row]], rad[col])
    keep = (col != own[row]) & (dist <= limit)
    row, col, dist = row[keep], col[keep], dist[keep]
    order = np.lexsort((rank[col], dist, row))  # per row: nearest first, ties by id
    row, col = row[order], col[order]
    per_row = np.bincount(row, minlength=len(own))
    first = np.cumsum(per_row) - per_row
    top = (np.arange(len(row)) - first[row]) < NEIGHBOUR_K
    row, col = row[top], col[top]
    col = col[np.lexsort((rank[col], row))]  # stored in id order: sums in the same order
    return col, np.bincount(row, minlength=len(own))


def _haversine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle distance in radians between rows of (lat, lon) radians, pair by pair."""
    dlat, dlon = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    h = np.sin(dlat / 2) ** 2 + np.cos(a[:, 0]) * np.cos(b[:, 0]) * np.sin(dlon / 2) ** 2
    return 2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def neighbours_of(location_ids: Sequence[str], places: pd.DataFrame) -> list[str]:
    """The locations of `places` among the NEIGHBOUR_K nearest within NEIGHBOUR_KM of any of
    `location_ids` (themselves excluded; neighbour_matrix's rule): what a batch must read
    besides its own, so that its regional features are those of the whole network. The matrix
    has a row per batch location only: cost follows the batch, not the network squared."""
    ids = places["location_id"].astype(str).drop_duplicates().tolist()
    found = np.unique(neighbour_matrix(ids, places, rows=list(location_ids)).indices)
    own = set(location_ids)
    return [ids[j] for j in found if ids[j] not in own]
