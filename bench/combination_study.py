"""Study: the served median (the model combined online with persistence and seasonal naive,
`common.forecasting.combination`) against the model alone, on places the model was not
trained on, and the combination's memory chosen there.

    .venv/bin/python bench/combination_study.py [--work DIR] [--max-rows N] [--splits S ...]

Backfills ../shared/data/beijing-multisite (as bench/train_beijing.py does) into --work once.
Each split fits the model with the train job's code (`fit_model`: fit / validation /
calibration blocks, the combination's state learned on the calibration block) on issue
times before 2016-03-01 of its training stations only, then scores every issue time
2016-03-01 .. 2017-02-27 of its test stations: the model alone, and the combination
replayed hour by hour as predict serves it (`online_weights`: the calibration state,
stepped before each issue hour by the hours verified by then) for each memory of the grid
(the hours after which an old loss weighs e times less).

Splits: `time` trains on all 8 stations and scores all 8 (in-sample places, the train
benchmark's split); `lso-K` (K = 0..3) holds out two stations, trains on the other six
and scores the two (places the model never saw). The held-out stations' neighbours are
the whole network at scoring time, as a new place joining a network would have.
`elsewhere` trains on all 8 Beijing stations and scores places unlike Beijing, made by
the synthetic source (`common.sources.synthetic`, the same year, no neighbour within
100 km) in three regimes (`ELSEWHERE`): another climate (Singapore as generated), a
low-cost sensor (Delhi's strong daily cycle read by an optical sensor: hourly noise
and the over-reading in humid air such sensors have) and a sensor whose calibration
shifts the level every week or two (Los Angeles). "combined" replays each alone, as a
deployment of places like it would serve it, from the Beijing version's calibration
state.

Every split adds what predict serves when a scored place joins the network (the 8
Beijing stations, which for `lso-K` are 6 trained and 2 held out; for `elsewhere` the
8 and the place): "network weights", the network's weights alone (predict before
per-place weights), and "per place, from the network (served)", each place's own
weights per horizon group started from the network's at its first verified hour
(`online_place_weights`: what predict serves now). The Beijing splits also add "per
place per horizon": each scored station alone, per horizon from the calibration state.
Every split adds seasonal naive. `--memories` sets the grid of "combined" memories.

Prints, per split and variant, each station's MAE / persistence by horizon group (1-3,
4-12, 13-24 h), over 1..24, its worst horizon and the p10-p90 coverage, over 1..24 and
its lowest and highest at a single horizon (the calibrated
interval moved with the combined median; the adaptive offsets are not replayed here),
then the mean and worst over the held-out stations.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import train_beijing as tb  # noqa: E402

HELD_OUT = (
    ("Aotizhongxin", "Huairou"),
    ("Changping", "Dongsi"),
    ("Dingling", "Guanyuan"),
    ("Gucheng", "Nongzhanguan"),
)
GROUPS = ((1, 3), (4, 12), (13, 24))
# The places unlike Beijing of the `elsewhere` split: (synthetic place, regime, label).
ELSEWHERE = (
    ("synth-singapore", "as generated", "Singapore: tropical, clean"),
    ("synth-delhi", "low-cost sensor", "Delhi: low-cost sensor"),
    ("synth-los-angeles", "level shifts", "Los Angeles: level shifts"),
)


def _regime(frame: pd.DataFrame, target: str, regime: str, seed: int) -> pd.DataFrame:
    """The synthetic series read the way `regime` reads it (seeded: the same numbers on
    every run). A low-cost optical sensor: log-normal noise of 0.25 per hour, and particles
    over-read by up to 1.6x as relative humidity rises from 70 % to 100 % (the water they
    take up; such sensors are corrected for it with a reference monitor nearby, which a new
    place lacks). Level shifts: a calibration factor exp(U(-0.5, 0.5)) drawn anew after
    each 5-15 days."""
    out = frame.copy()
    rng = np.random.default_rng(seed)
    v = out[target].to_numpy(float)
    if regime == "low-cost sensor":
        humid = 1 + 0.6 * np.clip((out["relative_humidity_2m"].to_numpy(float) - 70) / 30, 0, 1)
        v = v * humid * np.exp(rng.normal(0.0, 0.25, len(v)))
    elif regime == "level shifts":
        factor = np.empty(len(v))
        i = 0
        while i < len(v):  # hourly rows: a new factor after 5-15 days
            n = int(rng.integers(5 * 24, 15 * 24))
            factor[i : i + n] = np.exp(rng.uniform(-0.5, 0.5))
            i += n
        v = v * factor
    out[target] = np.round(v, 1)
    return out


def _elsewhere(spec: Any, obs: pd.DataFrame, places: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """The observations and places with the `ELSEWHERE` places added (the test year and
    the month before it, the examples' history)."""
    from common.core.config import load_settings
    from common.runtime.locations import load_file
    from common.sources.synthetic import SyntheticSource

    source = SyntheticSource(load_settings(backend="local"))
    packaged = {loc.location_id: loc for loc in load_file()}
    hours = pd.date_range(tb.TEST_START - dt.timedelta(days=30), tb.DATA_END, freq="h")
    frames, rows = [obs], [places]
    for k, (loc_id, regime, label) in enumerate(ELSEWHERE):
        loc = packaged[loc_id]
        series = _regime(source.series(loc, hours), spec.target, regime, seed=k)
        frames.append(series.reindex(columns=obs.columns))
        row = {c: getattr(loc, c, None) for c in places.columns}
        rows.append(pd.DataFrame([{**row, "name": label}]))
    return pd.concat(frames, ignore_index=True), pd.concat(rows, ignore_index=True)


def _load(work: Path) -> tuple[Any, pd.DataFrame, pd.DataFrame, Any]:
    home = work / "home"
    if not (home / "warehouse.duckdb").exists():
        home.mkdir(parents=True, exist_ok=True)
        tb.backfill(home)
    os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local")
    from common.forecasting.features import FeatureSpec
    from common.runtime import locations
    from common.runtime.services import get_services
    from common.train.observations import observations, summarise

    svc = get_services()
    spec = FeatureSpec(svc.settings.target, svc.settings.horizon, False)
    start = tb.DATA_START - dt.timedelta(hours=1)
    summary = summarise(svc.warehouse, spec, start, tb.DATA_END)
    obs = observations(svc.warehouse, spec, start, tb.DATA_END, summary)
    if not isinstance(obs, pd.DataFrame):
        raise SystemExit("the Beijing window should be read into memory")
    return spec, obs, locations.current(svc.warehouse), summary


def _station(location_id: str) -> str:
    label = {loc_id: label for loc_id, _, label in ELSEWHERE}.get(location_id)
    return label or location_id.split("-")[-1].capitalize()


def _split(name: str, ids: list[str]) -> tuple[list[str], list[str]]:
    other = [i for i in ids if i.startswith("synth-")]
    ids = [i for i in ids if i not in other]
    if name == "elsewhere":
        return ids, other
    if name == "time":
        return ids, ids
    held = {s.lower() for s in HELD_OUT[int(name.split("-")[1])]}
    test = [i for i in ids if _station(i).lower() in held]
    return [i for i in ids if i not in test], test


def _fitted(
    name: str,
    spec: Any,
    obs: pd.DataFrame,
    places: pd.DataFrame,
    oldest: dt.datetime,
    max_rows: int,
    cache: Path | None,
) -> dict[str, Any]:
    """The split's fit, reduced to what the replays read: per example row of the test
    year (the scored places and the network they join) the model expert's median change,
    the calibrated band around it (`ForecastModel.calibrated`), the columns the experts
    and the bands need, and the version's combination start. Kept in `cache` (a pickle
    per split and row budget) so a second study of the same fit skips the fit."""
    import pickle

    from common.forecasting import training
    from common.forecasting.combination import Weights
    from common.forecasting.features import HISTORY_HOURS

    path = cache / f"{name}-{max_rows}.pkl" if cache else None
    if path and path.exists():
        return pickle.loads(path.read_bytes())
    ids = sorted(places["location_id"].astype(str))
    train_ids, test_ids = _split(name, ids)
    train_obs = obs[obs["location_id"].astype(str).isin(train_ids)]
    data = training.TrainingData(train_obs, spec, places[places["location_id"].isin(train_ids)])
    first = oldest + dt.timedelta(hours=HISTORY_HOURS)
    window = training.IssueWindow(first, tb.TEST_START, max_rows, 0)
    model = training.fit_model(data, window, params={"nthread": 2}).model
    X, y, keys = training.examples(obs, spec, tb.TEST_START, tb.TEST_END, places, 10**9, 0)
    # The training stations' rows are kept too: the network a held-out place joins.
    keep = keys["location_id"].astype(str).isin(set(test_ids) | set(train_ids)).to_numpy()
    X, y = X[keep].reset_index(drop=True), y[keep]
    band, expert = model.calibrated(X, np.tile([1.0, 0.0, 0.0], (len(X), 1)))
    fitted = {
        "train_ids": train_ids,
        "test_ids": test_ids,
        "X": X[[c for c in ("horizon_h", "level", "seasonal_24") if c in X]].copy(),
        "y": y,
        "keys": keys[keep].reset_index(drop=True),
        "expert": expert,
        "band": band,
        "start": model.combination or Weights.uniform(spec.horizon),
    }
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(fitted))
    return fitted


def replay_offsets(
    band: np.ndarray,
    y: np.ndarray,
    keys: pd.DataFrame,
    rows: np.ndarray,
    horizon: int,
    eta: float,
    place_eta: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper offsets each of `rows` (one deployment's rows) is served with
    as predict serves them: the target's adaptive offsets per horizon stepped before each
    issue hour by every hour verified by then (target hour <= issue time - VERIFY_LAG_H),
    each verified forecast judged by the bounds it was served with; with `place_eta`, each
    place's own offsets per horizon group added (`PlaceWeights`' step on the place's own
    share). Both are `aci_step`, predict's arithmetic, on arrays."""
    from common.forecasting.adaptation import VERIFY_LAG_H, aci_step
    from common.forecasting.combination import group_of, horizon_groups, issue_hours
    from common.forecasting.model import widened

    k = keys.iloc[rows]
    target = pd.to_datetime(k["target_ts"], utc=True).dt.tz_convert(None).to_numpy()
    h = k["horizon_h"].to_numpy(int)
    place = pd.factorize(k["location_id"].astype(str))[0]
    groups = horizon_groups(horizon)
    group = group_of(h, groups)
    cell = place * len(groups) + np.maximum(group, 0)  # (place, group) as one index
    cells = (place.max() + 1) * len(groups)
    q, change = band[rows], y[rows]
    net = np.zeros((2, horizon))  # the target's lower / upper offset per horizon
    own = np.zeros((2, cells))  # each place's per group
    lo, hi = np.zeros(len(rows)), np.zeros(len(rows))
    miss = np.zeros((2, len(rows)))  # below p10, above p90 as served
    ok = np.isfinite(change) & (group >= 0)
    by_target = np.argsort(target, kind="stable")
    sorted_target = target[by_target]
    lag = np.timedelta64(VERIFY_LAG_H, "h")
    done = 0
    for when, m in issue_hours(k["issued_at"]):
        ready = int(
            np.searchsorted(sorted_target, when.tz_convert(None).to_datetime64() - lag, "right")
        )
        if ready > done:  # the hours verified since the last issue time, in time order
            verified = by_target[done:ready]
            verified = verified[ok[verified]]
            for hour in np.unique(target[verified]):
                v = verified[target[verified] == hour]
                n = np.bincount(h[v] - 1, minlength=horizon)
                for tail in (0, 1):
                    c = np.bincount(h[v] - 1, weights=miss[tail, v], minlength=horizon)
                    seen = n > 0
                    net[tail, seen] = aci_step(net[tail, seen], c[seen] / n[seen], eta)
                if place_eta:
                    n = np.bincount(cell[v], minlength=cells)
                    for tail in (0, 1):
                        c = np.bincount(cell[v], weights=miss[tail, v], minlength=cells)
                        seen = n > 0
                        own[tail, seen] = aci_step(own[tail, seen], c[seen] / n[seen], place_eta)
            done = ready
        kk = np.clip(h[m], 1, horizon) - 1
        lo[m], hi[m] = net[0, kk] + own[0, cell[m]], net[1, kk] + own[1, cell[m]]
        served = widened(q[m], lo[m], hi[m])
        miss[0, m], miss[1, m] = change[m] < served[:, 0], change[m] > served[:, 2]
    return lo, hi


def run_split(
    name: str,
    spec: Any,
    obs: pd.DataFrame,
    places: pd.DataFrame,
    oldest: dt.datetime,
    max_rows: int,
    grid: list[float],
    cache: Path | None = None,
    place_etas: tuple[float, ...] = (),
) -> list[dict[str, Any]]:
    from common.forecasting.combination import MEMORY_H, combine, online_weights
    from common.forecasting.model import widened
    from common.forecasting.place_replay import online_place_weights
    from common.runtime.services import get_services

    fit = _fitted(name, spec, obs, places, oldest, max_rows, cache)
    train_ids, test_ids = fit["train_ids"], fit["test_ids"]
    X, y, keys, expert, start = fit["X"], fit["y"], fit["keys"], fit["expert"], fit["start"]
    kept = sorted(set(test_ids) | set(train_ids))
    loc = keys["location_id"].astype(str).to_numpy()
    scored = np.isin(loc, test_ids)
    settings = get_services().settings
    eta, own_eta = settings.interval_adapt_eta, settings.place_interval_eta

    def around(w: np.ndarray) -> np.ndarray:
        """The version's calibrated band around the median combined with weights `w`."""
        q = fit["band"].copy()
        q[:, 1] = combine(expert, X, w)
        return q

    def served(q: np.ndarray, lo: Any = 0.0, hi: Any = 0.0) -> np.ndarray:
        """p10/p50/p90 of the rows of band `q` (`around`) widened by offsets lo, hi
        (`widened`), as predict serves them."""
        level = X["level"].to_numpy(float)
        return np.clip(np.expm1(level[:, None] + widened(q, lo, hi)), 0.0, None)

    def replay(
        parts: list[np.ndarray], memory: float, place: bool = False, groups: Any = None
    ) -> np.ndarray:
        """The weights of every row, stepped on each part's rows alone (a part: the rows of
        one deployment): the network's (`online_weights`), or with `place` each place's
        own per horizon group started from the part's network weights at its first
        verified hour (`online_place_weights`: what predict serves now)."""
        w = np.full((len(X), 3), np.nan)
        for m in parts:
            if place:
                w[m] = online_place_weights(
                    expert[m], X[m], y[m], keys["issued_at"][m], keys["target_ts"][m],
                    keys["location_id"][m], start, memory, groups,
                )  # fmt: skip
            else:
                w[m] = online_weights(
                    expert[m], X[m], y[m], keys["issued_at"][m], keys["target_ts"][m], start,
                    memory,
                )  # fmt: skip
        return w

    every = [np.isin(loc, test_ids)]  # held-out stations together: one network
    each = [loc == i for i in test_ids]  # each place alone: its own weights
    # The network a scored place joins: elsewhere, the 8 Beijing stations and the place;
    # held-out stations, all 8 (6 trained, 2 held out); `time`, the 8.
    if name == "elsewhere":
        joined = [np.isin(loc, train_ids) | (loc == i) for i in test_ids]
    else:
        joined = [np.isin(loc, kept)]
    variants = {"model alone": served(around(np.tile([1.0, 0, 0], (len(X), 1))))[scored]}
    for memory in grid:  # elsewhere: each place alone, as a deployment of places like it
        w = replay(each if name == "elsewhere" else every, memory)
        variants[f"combined, memory {memory:g} h"] = served(around(w))[scored]
    # What is served: the network's weights alone (before per-place weights), and each
    # place's own started from them (per horizon group); its band without adaptive offsets,
    # with the target's replayed on the network it joins, and with the place's own added
    # (at the default step, served, and at each of `place_etas`).
    variants["network weights"] = served(around(replay(joined, MEMORY_H)))[scored]
    band = around(replay(joined, MEMORY_H, place=True))
    variants["per place, no offsets"] = served(band)[scored]
    for place_eta in sorted({0.0, own_eta, *place_etas}):
        lo, hi = np.zeros(len(X)), np.zeros(len(X))
        for m in joined:
            rows = np.flatnonzero(m)
            lo[rows], hi[rows] = replay_offsets(band, y, keys, rows, spec.horizon, eta, place_eta)
        label = "per place + the target's offsets"
        if place_eta:
            label += f" + its own (eta {place_eta:g})"
        if place_eta == own_eta:
            label += " (served)"
        variants[label] = served(band, lo, hi)[scored]
    # A what-if: each place's own weights per horizon (not per group), from the network's.
    single = [(k, k) for k in range(1, spec.horizon + 1)]
    per_horizon = around(replay(joined, MEMORY_H, place=True, groups=single))
    variants["per place per horizon, from the network"] = served(per_horizon)[scored]
    if name != "elsewhere":  # each station alone, per horizon from the calibration state
        alone = served(around(replay(each, MEMORY_H)))
        variants[f"per place per horizon, memory {MEMORY_H:g} h"] = alone[scored]
    naive = keys["seasonal_naive"].to_numpy(float)[scored]
    variants["seasonal naive"] = np.column_stack([naive, naive, naive])
    keys = keys[scored].reset_index(drop=True)
    out = []
    actual = keys["actual"].to_numpy(float)
    persisted = keys["persistence"].to_numpy(float)
    h = keys["horizon_h"].to_numpy(int)
    station = keys["location_id"].astype(str).map(_station).to_numpy()
    for variant, q in variants.items():
        for s in sorted(set(station)):
            m = station == s
            row = {"split": name, "variant": variant, "station": s}
            for a, b in GROUPS:
                g = m & (h >= a) & (h <= b)
                row[f"{a}-{b}"] = (
                    np.abs(q[g, 1] - actual[g]).mean() / np.abs(persisted[g] - actual[g]).mean()
                )
            row["1..24"] = (
                np.abs(q[m, 1] - actual[m]).mean() / np.abs(persisted[m] - actual[m]).mean()
            )
            by_h = [
                np.abs(q[m & (h == k), 1] - actual[m & (h == k)]).mean()
                / np.abs(persisted[m & (h == k)] - actual[m & (h == k)]).mean()
                for k in range(1, spec.horizon + 1)
            ]
            row["worst h"], row["at h"] = max(by_h), int(np.argmax(by_h)) + 1
            inside = (actual >= q[:, 0]) & (actual <= q[:, 2])
            row["coverage"] = float(inside[m].mean())
            cover = [float(inside[m & (h == k)].mean()) for k in range(1, spec.horizon + 1)]
            row["coverage min h"], row["coverage max h"] = min(cover), max(cover)
            out.append(row)
    return out


def main() -> None:
    from common.forecasting.combination import MEMORY_H

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/aircast-combination-study"))
    p.add_argument("--max-rows", type=int, default=150_000)
    p.add_argument("--splits", nargs="*", default=["time", "lso-0", "lso-1", "lso-2", "lso-3"])
    p.add_argument("--out", type=Path)
    p.add_argument(
        "--cache", action="store_true",
        help="keep each split's fit under --work and reuse it (variants of serving, one fit)",
    )  # fmt: skip
    p.add_argument(
        "--place-etas", nargs="*", type=float, default=[],
        help="what-if: each place's own interval offsets per horizon group, at these steps",
    )  # fmt: skip
    p.add_argument(
        "--memories", nargs="*", type=float, default=[24.0, 168.0, 720.0],
        help="memories (hours) of the network combination to compare (the default is added)",
    )  # fmt: skip
    args = p.parse_args()
    if not tb.DATA.is_dir():
        sys.exit(f"{tb.DATA} not found: the Beijing files live in ../shared/data")
    args.work.mkdir(parents=True, exist_ok=True)
    spec, obs, places, summary = _load(args.work)
    if "elsewhere" in args.splits:
        obs, places = _elsewhere(spec, obs, places)
    grid = sorted({float(MEMORY_H), *args.memories})
    rows: list[dict[str, Any]] = []
    for name in args.splits:
        rows += run_split(
            name, spec, obs, places, summary.oldest, args.max_rows, grid,
            args.work / "fits" if args.cache else None, tuple(args.place_etas),
        )  # fmt: skip
        frame = pd.DataFrame(rows)
        print(_markdown(frame[frame["split"] == name]), flush=True)
        if args.out:  # after each split: a long study keeps what it measured
            args.out.write_text(json.dumps(rows, indent=1))
    frame = pd.DataFrame(rows)
    held = frame[~frame["split"].isin(["time", "elsewhere"])]
    if len(held):
        cols = ["1-3", "4-12", "13-24", "1..24", "worst h", "coverage"]
        cols += ["coverage min h", "coverage max h"]
        spread = held.groupby("variant")[cols]
        print("\nheld-out stations: mean over stations")
        print(_markdown(spread.mean().reset_index()))
        print("\nheld-out stations: worst station")
        print(_markdown(spread.max().reset_index()))
        band = held.groupby("variant").agg(
            low=("coverage min h", "min"), high=("coverage max h", "max")
        )
        print(
            "\nheld-out stations: coverage at a single horizon, lowest and highest of any station"
        )
        print(_markdown(band.reset_index()))


def _markdown(frame: pd.DataFrame) -> str:
    """A markdown table of `frame` (numbers to 3 decimals)."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in frame.values]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
