"""Study: alternatives to the served model's intervals and median, on the train benchmark's
split, scored on the whole test year, March 2016 and the replay's two weeks.

    .venv/bin/python bench/model_study.py intervals [--work DIR] [--test-year Y] [--etas E ...]
        [--pools P ...] [--adaptive-only]
    .venv/bin/python bench/model_study.py median [--work DIR] [--bags K] [--same-sample]
        [--per-pair K] [PARAMS_JSON ...]

The split is bench/train_beijing.py's: the 8 stations backfilled from
../shared/data/beijing-multisite, fit / validation / calibration blocks built by the train
job's own code on issue times before 2016-03-01 (default 500,000-row budget), every issue
time 2016-03-01 .. 2017-02-27 scored. The examples and the default model are cached in
--work so that each variant costs only its own fit.

`intervals` keeps the default booster and changes only how p10/p90 are calibrated: the
served per-horizon split conformal shift; per-horizon x level-tercile or x volatility-tercile
(Mondrian) shifts; shifts scaled by the raw interval width; recency-weighted calibration
rows; a wider nominal level; and two online schemes that use realised errors after the
issue time only (a rolling window of the last W days, and the pipeline's adaptive offsets,
`common.forecasting.adaptation`, stepped hour by hour as predict steps them). Coverage is
reported by horizon for each period, with how many of the period's two-week windows stay
within 0.75..0.85 at every horizon (the replay's target).

`median` refits the median booster with other parameters (JSON, merged into the
defaults) or as the mean of K boosters each fitted on its own seeded sample of the fit
block (--bags), with the served per-horizon shrinkage learned on the calibration block,
and reports MAE / persistence on the calibration block (before the test year: the only
score a choice may be made on) and on the test periods.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import train_beijing as tb  # noqa: E402

Frame = tuple[pd.DataFrame, np.ndarray, pd.DataFrame]
NOMINAL = 0.8


class Study:
    """The cached split: fit/validation/calibration examples and the test year."""

    def __init__(self, work: Path, year: int = 2016) -> None:
        home = work / "home"
        if not (home / "warehouse.duckdb").exists():
            home.mkdir(parents=True, exist_ok=True)
            tb.backfill(home)
        os.environ.update(
            AIRCAST_HOME=str(home), AIRCAST_BACKEND="local", AIRCAST_CSV_PATH=str(tb.DATA)
        )
        from common.forecasting import training
        from common.forecasting.features import HISTORY_HOURS, FeatureSpec
        from common.runtime import locations
        from common.runtime.services import get_services
        from common.train.observations import observations, summarise

        svc = get_services()
        self.max_rows = svc.settings.train_max_rows
        self.spec = FeatureSpec(svc.settings.target, svc.settings.horizon, False)
        start = tb.DATA_START - dt.timedelta(hours=1)
        summary = summarise(svc.warehouse, self.spec, start, tb.DATA_END)
        self.obs = observations(svc.warehouse, self.spec, start, tb.DATA_END, summary)
        self.places = locations.current(svc.warehouse)
        assert summary.oldest is not None, "no observations in the study window"
        self.first = summary.oldest + dt.timedelta(hours=HISTORY_HOURS)
        # The test year runs from March 1 of `year` (2016: the train benchmark's); the fit
        # blocks end where it starts.
        self.test_start = tb.TEST_START.replace(year=year)
        self.test_end = tb.TEST_END.replace(year=year + 1)
        self.blocks = training.fit_blocks(self.first, self.test_start, self.spec.horizon)
        suffix = "" if year == 2016 else f"-{year}"
        self.suffix = suffix
        cache = work / f"examples-{self.max_rows}{suffix}.pkl"
        if cache.exists():
            self.built, self.test = pickle.loads(cache.read_bytes())
        else:
            self.built = {
                name: self.block(name, {"fit": 1, "validation": 8, "calibration": 8}[name])
                for name in self.blocks
            }
            self.test = training.examples(
                self.obs, self.spec, self.test_start, self.test_end, self.places, 10**8, 0
            )
            cache.write_bytes(pickle.dumps((self.built, self.test)))
        keys = self.test[2]
        issued = pd.to_datetime(keys["issued_at"], utc=True)
        target = pd.to_datetime(keys["target_ts"], utc=True)
        self.periods = {
            "test year": np.ones(len(keys), bool),
            "March": ((issued >= f"{year}-03-01") & (issued < f"{year}-04-01")).to_numpy(),
            "Mar 1-14": (target <= pd.Timestamp(f"{year}-03-15", tz="UTC")).to_numpy(),
        }
        self.h = self.test[0]["horizon_h"].to_numpy().astype(int)
        self.actual = keys["actual"].to_numpy(float)
        self.persistence = keys["persistence"].to_numpy(float)

    def block(self, name: str, share: int, seed: int = 0, per_pair: int = 0) -> Frame:
        """One block's examples (fit budget / share rows), cut so targets stay inside it;
        with `per_pair` K, H/K times the issue pairs, each keeping K random horizons."""
        from common.forecasting import training

        a, b = self.blocks[name]
        cut = training.cut_observations(
            training.cut_observations(self.obs, self.test_start),
            b + dt.timedelta(hours=self.spec.horizon),
        )
        H = self.spec.horizon
        more = H // per_pair if per_pair else 1
        X, y, keys = training.examples(
            cut, self.spec, a, b, self.places, self.max_rows * more // share, seed
        )
        if more == 1:
            return X, y, keys
        rng = np.random.default_rng(seed + 77)
        pair = keys["issued_at"].array.asi8 * 10_000 + keys["location_id"].cat.codes
        rank = pd.Series(rng.random(len(keys))).groupby(pair.to_numpy()).rank(method="first")
        keep = (rank <= per_pair).to_numpy()
        return (
            X[keep].reset_index(drop=True),
            y[keep],
            keys[keep].reset_index(drop=True),
        )

    def default_model(self, work: Path) -> Any:
        from common.forecasting.model import DEFAULT_PARAMS, ForecastModel

        path = work / f"model-{self.max_rows}{self.suffix}.pkl"
        if path.exists():
            files, state = pickle.loads(path.read_bytes())
            return ForecastModel.from_files(files, state)
        (X, y, _), (Xv, yv, _) = self.built["fit"], self.built["validation"]
        model = ForecastModel(
            self.spec.columns(), self.spec.horizon, {**DEFAULT_PARAMS, "nthread": 2}
        )
        model.fit(X, y, Xv, yv)
        model.calibrate(*self.built["calibration"][:2])
        path.write_bytes(pickle.dumps((model.to_files(), model.state())))
        return model


def _quantile_by(
    score: np.ndarray, q: float, h: np.ndarray, horizon: int, weight: np.ndarray | None = None
) -> np.ndarray:
    """Per horizon (index 1..horizon) the q-quantile of `score` (weighted if given)."""
    out = np.zeros(horizon + 1)
    for k in range(1, horizon + 1):
        m = h == k
        if weight is None:
            out[k] = np.quantile(score[m], q)
            continue
        order = np.argsort(score[m])
        cum = np.cumsum(weight[m][order])
        out[k] = score[m][order][min(np.searchsorted(cum / cum[-1], q), m.sum() - 1)]
    return out


def _by_hour(rows: np.ndarray, hours: np.ndarray) -> dict[Any, np.ndarray]:
    """Row indices grouped by hour."""
    order = rows[np.argsort(hours[rows], kind="stable")]
    keys, first = np.unique(hours[order], return_index=True)
    return dict(zip(keys, np.split(order, first[1:]), strict=True))


@dataclass(frozen=True)
class Realised:
    """Each test row's scores against the served bounds (> 0 = a miss), its horizon, and the
    hours it was issued at and verified at (its target hour)."""

    lo: np.ndarray
    hi: np.ndarray
    h: np.ndarray
    issued: np.ndarray
    target: np.ndarray
    horizon: int


def _rolling(r: Realised, days: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Extra widening at each issue hour t: the q-quantile of the realised scores of rows
    with target hour <= t issued in the last `days` days."""
    lo_add, hi_add = np.zeros(len(r.h)), np.zeros(len(r.h))
    span = np.timedelta64(days * 24, "h")
    for k in range(1, r.horizon + 1):
        rows = np.flatnonzero(r.h == k)
        for t, now in _by_hour(rows, r.issued).items():
            seen = rows[(r.target[rows] <= t) & (r.issued[rows] >= t - span)]
            if len(seen) >= 50:
                lo_add[now] = np.quantile(r.lo[seen], q)
                hi_add[now] = np.quantile(r.hi[seen], q)
    return lo_add, hi_add


def _pooled(verified: pd.DataFrame, pool: int) -> pd.DataFrame:
    """Each (target hour, horizon)'s counts summed over the horizons within `pool` of it at
    the same target hour: a less noisy miss share for a step of the same size."""
    if pool == 0:
        return verified
    wide = verified.pivot_table(
        index="target_ts", columns="horizon_h", values=["n", "below", "above"], fill_value=0
    )
    out = []
    for col in ("n", "below", "above"):
        part = wide[col].T.rolling(2 * pool + 1, center=True, min_periods=1).sum().T
        out.append(part.stack().rename(col))
    return pd.concat(out, axis=1).reset_index()


def _adaptive(r: Realised, eta: float, pool: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The pipeline's adaptive offsets (`common.forecasting.adaptation`) replayed hour by
    hour: each issue hour is served the offsets stepped from every forecast hour verified by
    then (target hour <= issue - VERIFY_LAG_H), each miss judged against the bounds that
    forecast was served with at its issue time."""
    from common.forecasting.adaptation import VERIFY_LAG_H, Offsets

    rows = np.arange(len(r.h))
    by_issue, by_target = _by_hour(rows, r.issued), _by_hour(rows, r.target)
    targets = np.array(sorted(by_target))
    lo_add, hi_add = np.zeros(len(r.h)), np.zeros(len(r.h))
    offsets, done = Offsets.zero(r.horizon), 0
    lag = np.timedelta64(VERIFY_LAG_H, "h")
    for t in sorted(by_issue):
        upto = int(np.searchsorted(targets, t - lag, side="right"))
        if upto > done:
            parts = []
            for s in targets[done:upto]:
                v = by_target[s]
                parts.append(
                    pd.DataFrame(
                        {
                            "target_ts": s,
                            "horizon_h": r.h[v],
                            "below": (r.lo[v] > lo_add[v]).astype(int),
                            "above": (r.hi[v] > hi_add[v]).astype(int),
                            "n": 1,
                        }
                    )
                )
            verified = pd.concat(parts).groupby(["target_ts", "horizon_h"], as_index=False).sum()
            verified = _pooled(verified, pool)
            offsets, done = offsets.step(verified, eta, None), upto
        now = by_issue[t]
        lo_add[now], hi_add[now] = offsets.at(r.h[now])
    return lo_add, hi_add


def _interval_score(lo: np.ndarray, hi: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The 80 % interval's score (Gneiting & Raftery 2007; lower is better): its width plus
    2 / 0.2 times how far an actual value falls outside it, so a narrow interval that misses
    pays for the miss and a wide one for its width."""
    return (hi - lo) + 10.0 * np.maximum(lo - y, 0) + 10.0 * np.maximum(y - hi, 0)


def _windows(
    covered: np.ndarray, sel: np.ndarray, h: np.ndarray, issued: np.ndarray, horizon: int
) -> tuple[int, int]:
    """(windows meeting, windows): the period's consecutive 14-day windows of issue times
    (the replay's length; a shorter last one is dropped) whose coverage lies within
    0.75..0.85 at every horizon, the replay's target."""
    days = (issued[sel] - issued[sel].min()).astype("timedelta64[D]").astype(int)
    window = days // 14
    full = np.unique(window)[: int((days.max() + 1) // 14)]
    ok = 0
    for w in full:
        m = window == w
        by_h = [covered[sel][m & (h[sel] == k)].mean() for k in range(1, horizon + 1)]
        ok += int(min(by_h) >= 0.75 and max(by_h) <= 0.85)
    return ok, len(full)


def intervals(
    study: Study,
    work: Path,
    etas: tuple[float, ...],
    adaptive_only: bool = False,
    pools: tuple[int, ...] = (0,),
) -> None:
    model = study.default_model(work)
    H = study.spec.horizon
    Xc, yc, kc = study.built["calibration"]
    Xt, yt, kt = study.test
    hc = Xc["horizon_h"].to_numpy().astype(int)
    ht = study.h
    qc = model._shrunk(model.raw(Xc), hc)
    qt = model._shrunk(model.raw(Xt), ht)
    lo_c, hi_c = yc - qc[:, 0], yc - qc[:, 2]  # > 0 above the bound
    tail = (1 - NOMINAL) / 2
    variants: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def per_horizon(nominal: float = NOMINAL, weight: np.ndarray | None = None) -> tuple:
        t = (1 - nominal) / 2
        lo = _quantile_by(lo_c, t, hc, H, weight)
        hi = _quantile_by(hi_c, 1 - t, hc, H, weight)
        return qt[:, 0] + lo[ht], qt[:, 2] + hi[ht]

    variants["per-horizon split conformal (served)"] = per_horizon()
    if not adaptive_only:
        variants["no conformal shift (raw boosters)"] = (qt[:, 0], qt[:, 2])
    for name, col in () if adaptive_only else (("level", "level"), ("volatility", "std_24")):
        edges = np.quantile(Xc[col].fillna(0), [1 / 3, 2 / 3])
        gc, gt = np.digitize(Xc[col].fillna(0), edges), np.digitize(Xt[col].fillna(0), edges)
        lo, hi = np.zeros_like(qt[:, 0]), np.zeros_like(qt[:, 0])
        for g in range(3):
            lo_g = _quantile_by(lo_c[gc == g], tail, hc[gc == g], H)
            hi_g = _quantile_by(hi_c[gc == g], 1 - tail, hc[gc == g], H)
            lo[gt == g], hi[gt == g] = lo_g[ht[gt == g]], hi_g[ht[gt == g]]
        variants[f"per horizon x {name} tercile (Mondrian)"] = (qt[:, 0] + lo, qt[:, 2] + hi)
    wc = np.maximum(qc[:, 2] - qc[:, 0], 1e-3)
    wt = np.maximum(qt[:, 2] - qt[:, 0], 1e-3)
    lo = _quantile_by(lo_c / wc, tail, hc, H)
    hi = _quantile_by(hi_c / wc, 1 - tail, hc, H)
    issued_c = pd.to_datetime(kc["issued_at"], utc=True)
    age_days = ((issued_c.max() - issued_c).dt.total_seconds() / 86400).to_numpy()
    if not adaptive_only:
        variants["scaled by the raw width"] = (qt[:, 0] + lo[ht] * wt, qt[:, 2] + hi[ht] * wt)
        for half_life in (30, 7):
            variants[f"recency-weighted, half-life {half_life} d"] = per_horizon(
                weight=0.5 ** (age_days / half_life)
            )
        variants["nominal 0.82 instead of 0.80"] = per_horizon(0.82)
    base_lo, base_hi = variants["per-horizon split conformal (served)"]
    # Online schemes on realised scores against the served bounds (> 0 = a miss).
    issued = pd.to_datetime(kt["issued_at"], utc=True).to_numpy().astype("datetime64[h]")
    target = pd.to_datetime(kt["target_ts"], utc=True).to_numpy().astype("datetime64[h]")
    realised = Realised(base_lo - yt, yt - base_hi, ht, issued, target, H)
    for days in () if adaptive_only else (7, 14):
        lo_add, hi_add = _rolling(realised, days, 1 - tail)
        variants[f"online: rolling {days}-day conformal"] = (base_lo - lo_add, base_hi + hi_add)
    for pool in pools:
        for eta in etas:
            lo_add, hi_add = _adaptive(realised, eta, pool)
            name = f"online: adaptive offsets, eta {eta}" + (f", pooled +-{pool} h" if pool else "")
            variants[name] = (base_lo - lo_add, base_hi + hi_add)
    level = Xt["level"].to_numpy(float)
    rows: list[dict[str, Any]] = []
    for name, (lo, hi) in variants.items():
        lo, hi = np.minimum(lo, qt[:, 1]), np.maximum(hi, qt[:, 1])
        p10, p90 = np.clip(np.expm1(level + lo), 0, None), np.clip(np.expm1(level + hi), 0, None)
        covered = (study.actual >= p10) & (study.actual <= p90)
        for period, sel in study.periods.items():
            by_h = [covered[sel & (ht == k)].mean() for k in range(1, H + 1)]
            rows.append(
                {
                    "variant": name,
                    "period": period,
                    "coverage": float(covered[sel].mean()),
                    "min": float(min(by_h)),
                    "max": float(max(by_h)),
                    "h": {k: float(by_h[k - 1]) for k in (1, 6, 12, 18, 24)},
                    "width": float(np.mean((p90 - p10)[sel])),
                    "score": float(np.mean(_interval_score(p10, p90, study.actual)[sel])),
                    "windows": _windows(covered, sel, ht, issued, H),
                }
            )
    print(
        "| calibration | period | coverage | min..max by h | h=1 | h=6 | h=12 | h=18 | h=24 "
        "| mean width | interval score | two-week windows in 0.75..0.85 at every h |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        hs = " | ".join(f"{v:.3f}" for v in r["h"].values())
        ok, n = r["windows"]
        print(
            f"| {r['variant']} | {r['period']} | {r['coverage']:.3f} "
            f"| {r['min']:.3f}..{r['max']:.3f} | {hs} | {r['width']:.1f} | {r['score']:.1f} "
            f"| {ok} of {n} |"
        )
    (work / "intervals.json").write_text(json.dumps(rows, indent=1))
    lo, hi = variants["per-horizon split conformal (served)"]
    p10 = np.expm1(level + np.minimum(lo, qt[:, 1]))
    p90 = np.expm1(level + np.maximum(hi, qt[:, 1]))
    print("\nserved intervals, share of actual values below p10 / above p90:")
    for period, sel in study.periods.items():
        shares = ", ".join(
            f"h={k} {np.mean(study.actual[sel & (ht == k)] < p10[sel & (ht == k)]):.3f}"
            f" / {np.mean(study.actual[sel & (ht == k)] > p90[sel & (ht == k)]):.3f}"
            for k in (1, 6, 12, 18, 24)
        )
        print(f"- {period}: {shares}")


def _served(frame: pd.DataFrame, change: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The served median: the last value moved by alpha_h of the booster's change."""
    return np.clip(np.expm1(frame["level"].to_numpy(float) + alpha * change), 0, None)


def median(
    study: Study,
    variants: list[dict[str, Any]],
    bags: int,
    same_sample: bool = False,
    per_pair: int = 0,
) -> None:
    import xgboost as xgb

    from common.forecasting.model import (
        DEFAULT_PARAMS,
        MAX_ROUNDS,
        ForecastModel,
        horizon_weights,
        learn_shrinkage,
    )

    H = study.spec.horizon
    cols = study.spec.columns()
    Xv, yv, _ = study.built["validation"]
    Xc, yc, kc = study.built["calibration"]
    Xt = study.test[0]
    hc = Xc["horizon_h"].to_numpy().astype(int)

    print(
        "| median | trees | fit s | calibration block | test year | max by h, year "
        "| March | Mar 1-14 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for extra in variants:
        rounds = int(extra.get("rounds", MAX_ROUNDS))
        params = {
            **DEFAULT_PARAMS,
            "nthread": 2,
            **{k: v for k, v in extra.items() if k != "rounds"},
        }
        power = float(params.get("horizon_weight_power", 1.0))
        booster_params = ForecastModel(cols, H, params)._booster_params(0.5)
        t0 = time.perf_counter()
        change_c: list[np.ndarray] = []
        change_t: list[np.ndarray] = []
        trees = []
        for k in range(bags):
            resample = per_pair > 0 or (k > 0 and not same_sample)
            seed = 1000 + k if k > 0 else 0
            X, y, _ = (
                study.block("fit", 1, seed=seed, per_pair=per_pair)
                if resample
                else study.built["fit"]
            )
            print(f"<!-- bag {k}: {len(y)} fit rows -->", flush=True)
            dtrain = xgb.QuantileDMatrix(
                X[cols],
                y,
                weight=horizon_weights(X["horizon_h"].to_numpy(), y, H, power),
                max_bin=int(params["max_bin"]),
            )
            dval = xgb.QuantileDMatrix(
                Xv[cols],
                yv,
                weight=horizon_weights(Xv["horizon_h"].to_numpy(), yv, H, power),
                ref=dtrain,
                max_bin=int(params["max_bin"]),
            )
            booster = xgb.train(
                {**booster_params, "seed": k},
                dtrain,
                rounds,
                evals=[(dval, "val")],
                early_stopping_rounds=20,
                verbose_eval=False,
            )
            booster = booster[: booster.best_iteration + 1]
            trees.append(booster.num_boosted_rounds())
            for frame, out in ((Xc, change_c), (Xt, change_t)):
                out.append(
                    booster.inplace_predict(np.ascontiguousarray(frame[cols].to_numpy(np.float32)))
                )
        seconds = time.perf_counter() - t0
        cc, ct = np.mean(change_c, axis=0), np.mean(change_t, axis=0)
        alpha = np.asarray(learn_shrinkage(cc, yc, hc, Xc["level"].to_numpy(float), H))

        cal_err = np.abs(_served(Xc, cc, alpha[hc - 1]) - kc["actual"].to_numpy(float))
        cal = cal_err.mean() / np.abs(kc["persistence"].to_numpy(float) - kc["actual"]).mean()
        err = np.abs(_served(Xt, ct, alpha[study.h - 1]) - study.actual)
        naive = np.abs(study.persistence - study.actual)
        r = {p: err[m].mean() / naive[m].mean() for p, m in study.periods.items()}
        worst = max(err[study.h == k].mean() / naive[study.h == k].mean() for k in range(1, H + 1))
        if bags > 1:  # each bag alone: how much the score moves with the sample of the data
            for k, (one_c, one_t) in enumerate(zip(change_c, change_t, strict=True)):
                a = np.asarray(learn_shrinkage(one_c, yc, hc, Xc["level"].to_numpy(float), H))
                one = np.abs(_served(Xt, one_t, a[study.h - 1]) - study.actual)
                print(f"<!-- bag {k} alone: test year {one.mean() / naive.mean():.4f} -->")
        label = json.dumps(extra) + (f", {bags} bags" if bags > 1 else "")
        label += ", one sample" if bags > 1 and same_sample else ""
        label += f", {per_pair} horizons per pair" if per_pair else ""
        print(
            f"| {label} | {'+'.join(map(str, trees))} | {seconds:.0f} | {cal:.4f} "
            f"| {r['test year']:.4f} | {worst:.3f} | {r['March']:.4f} "
            f"| {r['Mar 1-14']:.4f} |",
            flush=True,
        )


def refit(study: Study, months: int) -> None:
    """The test year served as the pipeline serves it when each retrain is promoted: a model
    refitted every `months` months by the train job's own `fit_model` on the trailing
    window (the default three years, as far as the data reaches), each scoring the issue
    times until the next refit. Every refit sees only observations before its own start."""
    from common.core.config import load_settings
    from common.forecasting import training

    H = study.spec.horizon
    window = dt.timedelta(days=load_settings().train_window_days)
    issued = pd.to_datetime(study.test[2]["issued_at"], utc=True)
    med, lo, hi = (np.full(len(issued), np.nan) for _ in range(3))
    start = study.test_start
    print("| refit at | issue times until | rows | fit s | MAE / persistence there |")
    print("|---|---|---:|---:|---:|")
    while start < study.test_end:
        end = min(
            start.replace(year=start.year + (start.month + months - 1) // 12,
                          month=(start.month + months - 1) % 12 + 1),
            study.test_end + dt.timedelta(days=1),
        )  # fmt: skip
        t0 = time.perf_counter()
        first = max(study.first, start - window)
        fitted = training.fit_model(
            training.TrainingData(
                training.cut_observations(study.obs, start), study.spec, study.places
            ),
            training.IssueWindow(first, start, study.max_rows),
        ).model
        sel = ((issued >= pd.Timestamp(start)) & (issued < pd.Timestamp(end))).to_numpy()
        q = fitted.predict(study.test[0][sel])
        med[sel], lo[sel], hi[sel] = q[:, 1], q[:, 0], q[:, 2]
        err = np.abs(med[sel] - study.actual[sel]).mean()
        naive = np.abs(study.persistence[sel] - study.actual[sel]).mean()
        print(
            f"| {start:%Y-%m-%d} | {end:%Y-%m-%d} | {sel.sum()} "
            f"| {time.perf_counter() - t0:.0f} | {err / naive:.4f} |",
            flush=True,
        )
        start = end
    err = np.abs(med - study.actual)
    naive = np.abs(study.persistence - study.actual)
    covered = (study.actual >= lo) & (study.actual <= hi)
    print()
    for period, m in study.periods.items():
        by_h = [err[m & (study.h == k)].mean() / naive[m & (study.h == k)].mean()
                for k in range(1, H + 1)]  # fmt: skip
        cov = [covered[m & (study.h == k)].mean() for k in range(1, H + 1)]
        print(
            f"- {period}: mean {err[m].mean() / naive[m].mean():.4f}x persistence, "
            f"h=1 {by_h[0]:.3f}, largest {max(by_h):.3f} (h={int(np.argmax(by_h)) + 1}), "
            f"coverage {min(cov):.3f}..{max(cov):.3f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("intervals", "median", "refit"))
    parser.add_argument("params", nargs="*", help="median: JSON objects of parameters")
    parser.add_argument("--work", type=Path, default=Path(".aircast/model-study"))
    parser.add_argument("--bags", type=int, default=1, help="median: boosters averaged")
    parser.add_argument(
        "--same-sample",
        action="store_true",
        help="median: the bags differ by seed only, all fitted on the same sample",
    )
    parser.add_argument(
        "--per-pair",
        type=int,
        default=0,
        help="median: each fit issue pair keeps this many random horizons, with H/K times "
        "the pairs (same row budget)",
    )
    parser.add_argument("--months", type=int, default=1, help="refit: months between refits")
    parser.add_argument(
        "--etas",
        type=float,
        nargs="+",
        default=[0.005, 0.01, 0.02, 0.05],
        help="intervals: steps of the adaptive offsets",
    )
    parser.add_argument(
        "--pools",
        type=int,
        nargs="+",
        default=[0],
        help="intervals: horizons either side whose misses each horizon's step also counts",
    )
    parser.add_argument(
        "--adaptive-only",
        action="store_true",
        help="intervals: only the served calibration and the adaptive offsets",
    )
    parser.add_argument(
        "--test-year",
        type=int,
        default=2016,
        help="the test year starts on March 1 of it (2015: the year before the benchmark's, "
        "to choose on)",
    )
    args = parser.parse_intermixed_args()
    args.work.mkdir(parents=True, exist_ok=True)
    study = Study(args.work, args.test_year)
    if args.what == "intervals":
        intervals(study, args.work, tuple(args.etas), args.adaptive_only, tuple(args.pools))
    elif args.what == "refit":
        refit(study, args.months)
    else:
        median(
            study,
            [json.loads(p) for p in args.params] or [{}],
            args.bags,
            args.same_sample,
            args.per_pair,
        )


if __name__ == "__main__":
    main()
