"""The regional features: what locations within NEIGHBOUR_KM show at t (pollution episodes
travel), and which locations a batch must read so its regional features are those of the
whole network."""

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
    """0/1 matrix: [i, j] = 1 when location j is within NEIGHBOUR_KM of i (j != i); one row
    per id of `rows` (default: every location), one column per location."""
    n = len(location_ids)
    p = places.drop_duplicates("location_id").set_index("location_id")
    lat = pd.to_numeric(p["latitude"].reindex(location_ids), errors="coerce").to_numpy(float)
    lon = pd.to_numeric(p["longitude"].reindex(location_ids), errors="coerce").to_numpy(float)
    known = np.flatnonzero(~np.isnan(lat) & ~np.isnan(lon))
    at = np.arange(n) if rows is None else pd.Index(location_ids).get_indexer(list(rows))
    asked = np.flatnonzero(np.isin(at, known))  # the rows with a known place
    if len(known) < 2 or len(asked) == 0:
        return sparse.csr_matrix((len(at), n))
    tree = BallTree(np.radians(np.c_[lat[known], lon[known]]), metric="haversine")
    points = np.radians(np.c_[lat[at[asked]], lon[at[asked]]])
    hits = tree.query_radius(points, NEIGHBOUR_KM / 6371.0)
    r = np.concatenate([np.full(len(h), asked[i]) for i, h in enumerate(hits)])
    c = np.concatenate([known[h] for h in hits])
    keep = c != at[r]
    return sparse.csr_matrix((np.ones(keep.sum()), (r[keep], c[keep])), shape=(len(at), n))


def neighbours_of(location_ids: Sequence[str], places: pd.DataFrame) -> list[str]:
    """The locations of `places` within NEIGHBOUR_KM of any of `location_ids` (themselves
    excluded): what a batch must read besides its own, so that its regional features are
    those of the whole network. The matrix has a row per batch location only: cost follows
    the batch, not the network squared."""
    ids = places["location_id"].astype(str).drop_duplicates().tolist()
    found = np.unique(neighbour_matrix(ids, places, rows=list(location_ids)).indices)
    own = set(location_ids)
    return [ids[j] for j in found if ids[j] not in own]
