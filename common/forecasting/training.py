"""Fitting and evaluating a model on a time window: the code the train job and the
benchmark share.

Time order is never shuffled. Issue times in [start, end - H] (so every target hour is at
or before `end`) are split into fit (first 80%), validation for early stopping (next 10%)
and calibration of the intervals (last 10%), with an H-hour gap between blocks so that no
target hour of one block is an input hour of the next.

Every fit and evaluation reads the same three things (`TrainingData`) over a span of issue
times with a row budget (`IssueWindow`): two small values instead of seven arguments.

The observations are either a frame in memory (small data: every row is read once) or an
`ObservationSource` that reads bounded slices on demand (the warehouse, in the train job).
From a source, examples are a sampled selection (`sampled_examples`) whose memory follows
the row budget and MAX_CELLS, not locations x window: issue times are cut into day-long
segments, each segment draws a seeded subset of locations, and one small grid per batch of
segments holds only those locations (all columns) and their neighbours (the target only),
from HISTORY_HOURS before the batch's first issue time to H after its last. The features
of a row are the same as on the whole grid (they read HISTORY_HOURS back, targets H ahead,
neighbours' target at t-6..t); only the seasonal-naive baseline, the last value at or
before t + h - 24, looks no further back than the grid's start when a location has been
silent for two days.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeAlias, runtime_checkable

import numpy as np
import pandas as pd

from common.core.errors import Conflict
from common.forecasting.as_issued import AsIssuedInputs
from common.forecasting.combination import online_weights
from common.forecasting.evaluation import evaluate
from common.forecasting.examples import AsIssuedRows, examples_at, training_examples
from common.forecasting.features import HISTORY_HOURS, FeatureSpec, grid_columns
from common.forecasting.grid import Grid, anchors, eligible
from common.forecasting.model import DEFAULT_PARAMS, ForecastModel
from common.forecasting.neighbours import neighbour_matrix

__all__ = [
    "MAX_CELLS",
    "FitResult",
    "IssueWindow",
    "ObservationSource",
    "TrainingData",
    "cut_observations",
    "examples",
    "fit_model",
    "holdout_metrics",
    "sampled_examples",
]

FIT_SHARE, VAL_SHARE = 0.8, 0.1
# (location, hour) cells of one grid in memory: its ~20 float64 columns, the frame it is
# built from and build()'s window sums stay a few hundred MB at this size.
MAX_CELLS = 500_000
SEGMENT_HOURS = 24  # issue times per segment: each draws its own subset of locations
OVERSAMPLE = 4  # locations drawn per segment, relative to the share of pairs kept


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


# A frame in memory or a source read in slices. Declared an alias: pandas is untyped (Any) to
# the checker, and a bare `Any | X` assignment is a variable, not a type.
Observations: TypeAlias = pd.DataFrame | ObservationSource


@dataclass(frozen=True)
class TrainingData:
    """What examples are built from: observations (a frame in memory or a source read in
    bounded slices), the feature recipe, the locations, and where the forecasts as issued
    (weather, CAMS) are read from (none: every forecast input is missing)."""

    obs: Observations
    spec: FeatureSpec
    places: pd.DataFrame
    as_issued: AsIssuedInputs | None = None


@dataclass(frozen=True)
class IssueWindow:
    """Issue times in [start, end] and at most `max_rows` examples, sampled with `seed`."""

    start: dt.datetime
    end: dt.datetime
    max_rows: int
    seed: int = 0


@dataclass
class FitResult:
    model: ForecastModel
    rows: dict[str, int]
    blocks: dict[str, list[str]]  # name -> [first issue time, last issue time]


class NotEnoughHistory(Conflict, ValueError):
    """Too few observed rows to fit (409, the data must change first, whatever the request
    asked: a plain train and a tuning one answer alike). Still a ValueError, so a backtest
    fold without the history simply skips."""


def _blocks(
    start: dt.datetime, end: dt.datetime, horizon: int
) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    last = end - dt.timedelta(hours=horizon)
    span = (last - start).total_seconds() / 3600
    if span < 10 * horizon:
        raise ValueError(
            f"training window {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} is too short "
            f"for horizon {horizon}"
        )
    gap = dt.timedelta(hours=horizon)
    fit_end = start + dt.timedelta(hours=int(span * FIT_SHARE))
    val_end = start + dt.timedelta(hours=int(span * (FIT_SHARE + VAL_SHARE)))
    return {
        "fit": (start, fit_end - gap),
        "validation": (fit_end, val_end - gap),
        "calibration": (val_end, last),
    }


def fit_model(
    data: TrainingData, window: IssueWindow, params: Mapping[str, Any] | None = None
) -> FitResult:
    """Fit on observations with ts <= window.end, issue times from window.start."""
    spec, places, seed, max_rows = data.spec, data.places, window.seed, window.max_rows
    obs = cut_observations(data.obs, window.end)
    blocks = _blocks(window.start, window.end, spec.horizon)
    budget = {"fit": max_rows, "validation": max_rows // 8, "calibration": max_rows // 8}
    built = {}
    for name, (a, b) in blocks.items():
        # Targets must stay inside the block: cut the observations at its end + H.
        cut = cut_observations(obs, b + dt.timedelta(hours=spec.horizon))
        built[name] = examples(cut, spec, a, b, places, budget[name], seed, data.as_issued)
    model = ForecastModel(spec.columns(), spec.horizon, {**DEFAULT_PARAMS, **(params or {})})
    X, y, _ = built["fit"]
    Xv, yv, _ = built["validation"]
    if len(X) == 0 or len(Xv) == 0:
        raise NotEnoughHistory(
            "not enough observed history in the training window to fit a model: ingest "
            "more, or train at a later as_of",
            "as_of",
        )
    model.fit(X, y, Xv, yv)
    Xc, yc, kc = built["calibration"]
    model.calibrate(Xc, yc, kc["target_ts"])
    return FitResult(
        model,
        {k: len(v[1]) for k, v in built.items()},
        {k: [a.isoformat(), b.isoformat()] for k, (a, b) in blocks.items()},
    )


def holdout_metrics(
    model: ForecastModel, data: TrainingData, window: IssueWindow, as_served: bool = True
) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    """Metrics of `model` and the baselines for issue times in the window, with the inputs
    it is served (`as_served`): the forecasts as issued, even for a model trained on the
    observed weather (the study setting), so the gate never scores an oracle; and the
    median as served, combined online with the baselines (`served`)."""
    spec = data.spec
    if as_served and spec.weather != "as-issued":
        spec = replace(spec, weather="as-issued")
    X, y, keys = examples(
        data.obs,
        spec,
        window.start,
        window.end,
        data.places,
        window.max_rows,
        window.seed,
        data.as_issued,
    )
    if len(X) == 0:
        raise ValueError("no evaluation rows in the holdout window")
    q = served(model, X, y, keys)
    return evaluate(keys, q), keys, q


def served(model: ForecastModel, X: pd.DataFrame, y: np.ndarray, keys: pd.DataFrame) -> np.ndarray:
    """The forecasts of rows already observed as predict would have served them: the
    combination with the baselines starts from the version's calibration weights and is
    stepped before each issue hour by the hours verified by then
    (`common.forecasting.combination.online_weights`)."""
    if model.combination is None:
        return model.predict(X)
    weights = online_weights(
        model.expert_change(X), X, y, keys["issued_at"], keys["target_ts"], model.combination
    )
    return model.predict(X, weights=weights)


def cut_observations(obs: Observations, end: dt.datetime) -> Observations:
    """The observations with ts <= end (a frame filtered, a source cut)."""
    if isinstance(obs, pd.DataFrame):
        return obs[pd.to_datetime(obs["ts"], utc=True) <= pd.Timestamp(end)]
    return obs.until(end)


def examples(
    obs: Observations,
    spec: FeatureSpec,
    start: dt.datetime,
    end: dt.datetime,
    places: pd.DataFrame,
    max_rows: int,
    seed: int = 0,
    as_issued: AsIssuedInputs | None = None,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """(X, y, keys) for issue times in [start, end]: from the whole frame when it is in
    memory, else the sampled selection from the source (same contract). Forecasts as
    issued are read from `as_issued` for the target hours of those issue times."""
    if isinstance(obs, pd.DataFrame):
        ids = sorted(obs["location_id"].astype(str).unique()) if len(obs) else []
        rows = read_as_issued(
            as_issued,
            spec,
            start - dt.timedelta(hours=1),
            end + dt.timedelta(hours=spec.horizon),
            ids,
        )
        return training_examples(obs, spec, start, end, places, max_rows, seed, rows)
    return sampled_examples(obs, spec, start, end, places, max_rows, seed, as_issued=as_issued)


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
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
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
    n_loc = len(ids)
    k = max(1, math.ceil(share * n_loc))
    rng = np.random.default_rng(seed)
    nb = neighbour_matrix(ids, places).tocsr()
    span = SEGMENT_HOURS + HISTORY_HOURS + H  # grid hours of one segment
    units: list[_Unit] = []
    for s0 in range(0, max(n_hours, 0), SEGMENT_HOURS):
        drawn = np.arange(n_loc) if k >= n_loc else np.sort(rng.choice(n_loc, k, replace=False))
        s1 = min(s0 + SEGMENT_HOURS, n_hours) - 1
        units += _split(s0, s1, drawn, nb, max(max_cells // span, 1))
    out: list[tuple[pd.DataFrame, np.ndarray, pd.DataFrame]] = []
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
            rows = None
            if as_issued is not None and len(t):  # the target hours of the kept pairs only
                hours = grid.hours(np.array([t.min() - 1, t.max() + H]))
                lo, hi = (pd.Timestamp(x).tz_localize("UTC").to_pydatetime() for x in hours)
                kept = sorted({grid.location_ids[i] for i in np.unique(loc)})
                rows = read_as_issued(as_issued, spec, lo, hi, kept)
            out.append(examples_at(grid, loc, t, spec, places, rows))
    if not out:  # nothing eligible: the empty frames training_examples would give
        grid = Grid([], np.datetime64(first.replace(tzinfo=None), "h"), 1)
        grid.values = {c: np.empty((0, 1)) for c in [*grid_columns(spec), "wind_u", "wind_v"]}
        empty = np.empty(0, dtype=np.int64)
        return examples_at(grid, empty, empty, spec, places)
    X = pd.concat([o[0] for o in out], ignore_index=True)
    y = np.concatenate([o[1] for o in out])
    keys = pd.concat([o[2].astype({"location_id": str}) for o in out], ignore_index=True)
    keys["location_id"] = pd.Categorical(keys["location_id"], categories=ids)
    # Time order, then location, then horizon: the order training_examples gives (batches
    # may split a segment's locations).
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
