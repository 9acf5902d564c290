"""The sampled selection of training examples from an `ObservationSource` (the warehouse,
in the train job), whose memory follows the row budget and MAX_CELLS, not locations x
window.

Issue times are cut into day-long segments, each segment draws a seeded subset of
locations, and one small grid per batch of segments holds only those locations (all
columns) and their neighbours (the target only), from HISTORY_HOURS before the batch's first
issue time to H after its last. The features of a row are the same as on the whole grid
(they read HISTORY_HOURS back, targets H ahead, neighbours' target at t-6..t); only the
seasonal-naive baseline, the last value at or before t + h - 24, looks no further back than
the grid's start when a location has been silent for two days.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from common.forecasting import neighbours
from common.forecasting.as_issued import AsIssuedInputs
from common.forecasting.examples import AsIssuedRows, examples_at
from common.forecasting.features import HISTORY_HOURS, FeatureSpec, grid_columns
from common.forecasting.grid import Grid, anchors, eligible
from common.forecasting.neighbours import neighbour_matrix

# (location, hour) cells of one grid in memory: its ~20 float64 columns, the frame it is
# built from and build()'s window sums stay a few hundred MB at this size.
MAX_CELLS = 500_000
SEGMENT_HOURS = 24  # issue times per segment: each draws its own subset of locations
OVERSAMPLE = 4  # locations drawn per segment, relative to the share of pairs kept
Examples = tuple[pd.DataFrame, np.ndarray, pd.DataFrame]  # (X, y, keys)


@runtime_checkable
class ObservationSource(Protocol):
    """Observations with ts in (start, end], read in bounded slices (see the module doc)."""

    start: dt.datetime
    end: dt.datetime
    spec: FeatureSpec  # the recipe whose grid columns it reads

    def location_ids(self) -> list[str]:
        """Sorted ids of the locations with observations in the window."""
        ...

    def target_count(self, start: dt.datetime, end: dt.datetime) -> int:
        """Observed target values with ts in [start, end] (an estimate of the issue pairs)."""
        ...

    def read(
        self, start: dt.datetime, end: dt.datetime, ids: Sequence[str], columns: Sequence[str]
    ) -> pd.DataFrame:
        """location_id, ts and `columns` of `ids` with ts in (start, end] and in the window."""
        ...

    def until(self, end: dt.datetime) -> ObservationSource:
        """The same source, cut at `end` (nothing later can be read)."""
        ...


def read_as_issued(
    inputs: AsIssuedInputs | None,
    spec: FeatureSpec,
    start: dt.datetime,
    end: dt.datetime,
    ids: Sequence[str],
) -> AsIssuedRows | None:
    """The forecast rows (ts in (start, end], of `ids`) the examples may place: weather when
    the model reads forecast weather (not for the oracle study), CAMS always (it is a
    baseline of the metrics as well as an input when spec.cams)."""
    if inputs is None or not ids:
        return None
    wants_weather = spec.future_weather and spec.weather == "as-issued"
    weather = inputs.weather.read(start, end, ids) if wants_weather and inputs.weather else None
    cams = inputs.cams.read(start, end, ids) if inputs.cams else None
    return AsIssuedRows(weather, cams)


@dataclass(frozen=True)
class _Unit:
    """Issue hours [first, last] (offsets from the window's first issue time) of some
    locations (indices into the source's ids)."""

    first: int
    last: int
    locs: np.ndarray
    need: np.ndarray  # locs and their neighbours


def sampled_examples(
    source: ObservationSource,
    spec: FeatureSpec,
    start: dt.datetime,
    end: dt.datetime,
    places: pd.DataFrame,
    max_rows: int,
    seed: int = 0,
    max_cells: int | None = None,
    as_issued: AsIssuedInputs | None = None,
) -> Examples:
    """(X, y, keys) like `training_examples`, read from `source` in grids of at most
    `max_cells` (default MAX_CELLS) (location, hour) cells (see the module docstring).

    The share of issue pairs kept is the budget over the observed target values in
    [start, end]; each segment draws OVERSAMPLE times that share of the locations (all of
    them when the budget covers everything) and keeps its eligible pairs at the rate that
    leaves, so the rows stay within `max_rows` and follow where the data is.
    """
    ids = source.location_ids()
    if not ids:
        raise ValueError("no observations in the training window")
    max_cells = max_cells or MAX_CELLS
    H = spec.horizon
    first = _floor_hour(start)
    n_hours = int((_floor_hour(end) - first) / dt.timedelta(hours=1)) + 1
    pairs = max(max_rows // H, 1)
    expected = source.target_count(first, first + dt.timedelta(hours=max(n_hours, 1) - 1))
    rate = min(1.0, pairs / max(expected, 1))
    share = min(1.0, OVERSAMPLE * rate)
    rng = np.random.default_rng(seed)
    units = _units(
        ids, places, n_hours, share, rng, max(max_cells // (SEGMENT_HOURS + HISTORY_HOURS + H), 1)
    )
    out: list[Examples] = []
    taken = 0
    for batch in _batches(units, HISTORY_HOURS + H + 1, max_cells):
        if taken >= pairs:
            break
        got = _batch_examples(source, spec, places, ids, first, batch)
        if got is None:
            continue
        grid, loc, t = got
        take = min(len(loc), round(len(loc) * rate / share), pairs - taken)
        if take < len(loc):
            pick = np.sort(rng.choice(len(loc), take, replace=False))
            loc, t = loc[pick], t[pick]
        taken += take
        if take:
            rows = _as_issued_of(as_issued, spec, grid, loc, t)
            out.append(examples_at(grid, loc, t, spec, places, rows))
    if not out:  # nothing eligible: the empty frames training_examples would give
        return _no_examples(spec, places, first)
    return _in_order(out, ids)


def _units(
    ids: list[str],
    places: pd.DataFrame,
    n_hours: int,
    share: float,
    rng: np.random.Generator,
    max_locs: int,
) -> list[_Unit]:
    """Each segment's drawn locations (`share` of them, all when it is 1), in groups whose
    grid with neighbours holds `max_locs` locations."""
    n_loc = len(ids)
    k = max(1, math.ceil(share * n_loc))
    nb = network_matrix(ids, places)
    units: list[_Unit] = []
    for s0 in range(0, max(n_hours, 0), SEGMENT_HOURS):
        drawn = np.arange(n_loc) if k >= n_loc else np.sort(rng.choice(n_loc, k, replace=False))
        s1 = min(s0 + SEGMENT_HOURS, n_hours) - 1
        units += _split(s0, s1, drawn, nb, max_locs)
    return units


_NETWORK: dict[str, Any] = {}  # the last network's matrix, by network_key


def network_matrix(ids: list[str], places: pd.DataFrame) -> Any:
    """`neighbour_matrix` over every location (CSR), built once per network: a train run's
    fit, validation, calibration, holdout, backtest and tuning selections all draw from the
    same places (at 100,000 locations its 12 selections rebuilt the same 3.2 M pairs, ~6 s
    each alone, 7 % of the run's wall time). The key is the ids and their coordinates, so a
    changed place builds anew; one network is kept (37 MB at 100,000 locations). Callers
    only read it: its arrays are made read-only."""
    key = network_key(ids, places)
    if key not in _NETWORK:
        nb = neighbour_matrix(ids, places).tocsr()
        for array in (nb.data, nb.indices, nb.indptr):
            array.flags.writeable = False
        _NETWORK.clear()
        _NETWORK[key] = nb
    return _NETWORK[key]


def network_key(ids: list[str], places: pd.DataFrame) -> str:
    """What `neighbour_matrix(ids, places)` depends on: the rule's constants, the ids in
    order and the coordinates it reads for them (those of each id's first row, as it does)."""
    p = places.drop_duplicates("location_id").set_index("location_id")
    frame = pd.DataFrame(
        {
            "id": pd.Series(ids, dtype=object),
            "lat": pd.to_numeric(p["latitude"].reindex(ids), errors="coerce").to_numpy(float),
            "lon": pd.to_numeric(p["longitude"].reindex(ids), errors="coerce").to_numpy(float),
        }
    )
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    rule = f"{neighbours.NEIGHBOUR_K} {neighbours.NEIGHBOUR_KM}".encode()
    return hashlib.sha256(rule + hashed.tobytes()).hexdigest()


def _as_issued_of(
    as_issued: AsIssuedInputs | None, spec: FeatureSpec, grid: Grid, loc: np.ndarray, t: np.ndarray
) -> AsIssuedRows | None:
    """The forecasts as issued for the target hours of the kept pairs only."""
    if as_issued is None or not len(t):
        return None
    hours = grid.hours(np.array([t.min() - 1, t.max() + spec.horizon]))
    lo, hi = (pd.Timestamp(x).tz_localize("UTC").to_pydatetime() for x in hours)
    kept = sorted({grid.location_ids[i] for i in np.unique(loc)})
    return read_as_issued(as_issued, spec, lo, hi, kept)


def _no_examples(spec: FeatureSpec, places: pd.DataFrame, first: dt.datetime) -> Examples:
    """The empty frames training_examples would give."""
    grid = Grid([], np.datetime64(first.replace(tzinfo=None), "h"), 1)
    grid.values = {c: np.empty((0, 1)) for c in [*grid_columns(spec), "wind_u", "wind_v"]}
    empty = np.empty(0, dtype=np.int64)
    return examples_at(grid, empty, empty, spec, places)


def _in_order(out: list[Examples], ids: list[str]) -> Examples:
    """The batches' examples as one, in time order, then location, then horizon: the order
    training_examples gives (batches may split a segment's locations)."""
    X = pd.concat([o[0] for o in out], ignore_index=True)
    y = np.concatenate([o[1] for o in out])
    keys = pd.concat([o[2].astype({"location_id": str}) for o in out], ignore_index=True)
    keys["location_id"] = pd.Categorical(keys["location_id"], categories=ids)
    order = np.lexsort(
        (keys["horizon_h"].to_numpy(), keys["location_id"].cat.codes, keys["issued_at"].array.asi8)
    )
    if np.any(order != np.arange(len(order))):
        X, y = X.iloc[order].reset_index(drop=True), y[order]
        keys = keys.iloc[order].reset_index(drop=True)
    return X, y, keys


def _split(s0: int, s1: int, drawn: np.ndarray, nb: Any, max_locs: int) -> list[_Unit]:
    """The segment's drawn locations in groups whose grid (with neighbours) fits."""
    units: list[_Unit] = []
    group: list[int] = []
    need = np.empty(0, dtype=np.int64)
    for i in drawn:
        mine = np.union1d([i], nb.indices[nb.indptr[i] : nb.indptr[i + 1]])
        merged = np.union1d(need, mine)
        if group and len(merged) > max_locs:
            units.append(_Unit(s0, s1, np.asarray(group), need))
            group, merged = [], mine
        group.append(i)
        need = merged
    if group:
        units.append(_Unit(s0, s1, np.asarray(group), need))
    return units


def _batches(units: list[_Unit], extra: int, max_cells: int) -> list[list[_Unit]]:
    """Consecutive units grouped while the union of their locations x hours fits."""
    out: list[list[_Unit]] = []
    cur: list[_Unit] = []
    need = np.empty(0, dtype=np.int64)
    for u in units:
        merged = np.union1d(need, u.need)
        hours = u.last - (cur[0].first if cur else u.first) + extra
        if cur and len(merged) * hours > max_cells:
            out.append(cur)
            cur, merged = [], u.need
        cur.append(u)
        need = merged
    if cur:
        out.append(cur)
    return out


def _batch_examples(
    source: ObservationSource,
    spec: FeatureSpec,
    places: pd.DataFrame,
    ids: list[str],
    first: dt.datetime,
    batch: list[_Unit],
) -> tuple[Grid, np.ndarray, np.ndarray] | None:
    """One small grid for a batch of units and its eligible drawn (row, hour) pairs."""
    hour = dt.timedelta(hours=1)
    a = min(u.first for u in batch)
    b = max(u.last for u in batch)
    grid_start = first + (a - HISTORY_HOURS) * hour
    grid_end = first + (b + spec.horizon) * hour
    main = np.unique(np.concatenate([u.locs for u in batch]))
    rows = np.unique(np.concatenate([u.need for u in batch]))
    others = np.setdiff1d(rows, main)
    read_from = grid_start - hour  # read() is (start, end]
    frames = [source.read(read_from, grid_end, [ids[i] for i in main], grid_columns(spec))]
    if len(others):
        frames.append(source.read(read_from, grid_end, [ids[i] for i in others], [spec.target]))
    frames = [f for f in frames if len(f)]
    if not frames:
        return None
    obs = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    grid = Grid.from_frame(obs, grid_start, grid_end, [ids[i] for i in rows], grid_columns(spec))
    del obs, frames
    allowed = np.zeros((len(rows), grid.n_hours), dtype=bool)
    for u in batch:
        r = np.searchsorted(rows, u.locs)
        allowed[r, u.first - a + HISTORY_HOURS : u.last - a + HISTORY_HOURS + 1] = True
    loc, t = np.nonzero(eligible(*anchors(grid, spec.target)) & allowed)
    return grid, loc, t


def _floor_hour(value: dt.datetime) -> dt.datetime:
    ts = pd.Timestamp(value).tz_convert("UTC").floor("h")
    return ts.to_pydatetime()
