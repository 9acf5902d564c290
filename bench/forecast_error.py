"""Benchmark: what forecasts *as issued* are worth, on a synthetic world with known forecast
error (no archive of real forecasts exists for the Beijing csv).

    .venv/bin/python bench/forecast_error.py [--locations 10] [--days 120] [--max-rows 30000]

The world is the `synthetic` source: PM2.5 driven by the wind and rain of its own hour
(dispersion, wash-out), daily and weekly cycles, multi-day episodes. Its weather forecasts
are the truth plus an error growing with lead (sqrt(lead / 24): temperature +-1.5 °C,
wind +-30 %, rain +-1 mm at 24 h), issued every 6 hours like a global model; its CAMS-like
forecast is the true PM2.5 times a per-location bias in [0.7, 1.4] and a log-normal error
growing with lead, issued every 12 hours. Training and test rows take, for each issue time,
the newest forecast issued at or before it (common.forecasting.as_issued), so the lead of
the weather used for horizon h is h to h + 5 hours.

Variants, each fitted with the production code (fit_model) on the first days, **all scored
on the same later issue times with the forecasts as issued** (what a deployment sees):

- no weather after t;
- trained on the observed weather at the target hours (the oracle study), served forecasts;
- trained on forecasts as issued (the default), served forecasts;
- the same plus the CAMS forecast of the target as an input;
- for reference, the oracle scored with the oracle (what an offline benchmark with observed
  weather reports, and no deployment gets).

Prints the MAE over persistence's per horizon group (and the CAMS baseline's) as markdown
and JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.core.config import load_settings  # noqa: E402
from common.forecasting.as_issued import AsIssuedInputs, FrameSource  # noqa: E402
from common.forecasting.features import FeatureSpec  # noqa: E402
from common.forecasting.training import (  # noqa: E402
    IssueWindow,
    TrainingData,
    fit_model,
    holdout_metrics,
)
from common.sources.base import Location  # noqa: E402
from common.sources.synthetic import SyntheticSource  # noqa: E402

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
GROUPS = ((1, 3), (4, 12), (13, 24))
WEATHER_EVERY, CAMS_EVERY = 6, 12  # hours between issues


def world(
    n: int, days: int, seed: int
) -> tuple[list[Location], pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Locations, observations, weather forecasts and CAMS forecasts as issued."""
    rng = np.random.default_rng(seed)
    lat = 39.5 + rng.uniform(-1.5, 1.5, n)
    lon = 116.0 + rng.uniform(-1.5, 1.5, n)
    locs = [
        Location(
            f"bench-{seed}-{i:02d}",
            f"bench {i}",
            float(lat[i]),
            float(lon[i]),
            "synthetic",
            "Asia/Shanghai",
        )
        for i in range(n)
    ]
    src = SyntheticSource(load_settings(backend="local"))
    end = START + dt.timedelta(days=days)
    hours = pd.date_range(START, end, freq="h", tz="UTC")
    obs = pd.concat([src.series(loc, hours) for loc in locs], ignore_index=True)
    weather, cams = [], []
    first = START - dt.timedelta(days=2)
    for loc in locs:
        weather.append(
            src.weather_forecasts(loc, pd.date_range(first, end, freq=f"{WEATHER_EVERY}h"))
        )
        cams.append(src.cams_forecasts(loc, pd.date_range(first, end, freq=f"{CAMS_EVERY}h")))
    wf = pd.concat(weather, ignore_index=True).assign(kind="as-issued")
    cf = pd.concat(cams, ignore_index=True)
    return locs, obs, wf, cf


def groups(metrics: dict) -> dict[str, dict[str, float]]:
    """MAE over persistence's (and CAMS's, on the rows it has) per horizon group."""
    out = {}
    rows = metrics["by_horizon"]
    for a, b in (*GROUPS, (1, 24)):
        sel = [r for r in rows if a <= r["horizon_h"] <= b]
        n = sum(r["n"] for r in sel)
        mae = sum(r["mae"] * r["n"] for r in sel) / n
        pers = sum(r["persistence_mae"] * r["n"] for r in sel) / n
        cn = sum(r.get("cams_n") or 0 for r in sel)
        cams = (
            sum((r.get("cams_mae") or 0) * (r.get("cams_n") or 0) for r in sel) / cn if cn else None
        )
        out[f"{a}-{b}"] = {
            "mae": mae,
            "ratio_persistence": mae / pers,
            "cams_ratio_persistence": None if cams is None else cams / pers,
            "persistence_mae": pers,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locations", type=int, default=10)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--test-days", type=int, default=30)
    ap.add_argument("--max-rows", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    t0 = time.perf_counter()
    locs, obs, wf, cf = world(args.locations, args.days, args.seed)
    made_s = time.perf_counter() - t0
    places = pd.DataFrame(
        {
            "location_id": [loc.location_id for loc in locs],
            "latitude": [loc.latitude for loc in locs],
            "longitude": [loc.longitude for loc in locs],
            "timezone": [loc.timezone for loc in locs],
        }
    )
    inputs = AsIssuedInputs(FrameSource(wf), FrameSource(cf))
    end = START + dt.timedelta(days=args.days)
    test_start = end - dt.timedelta(days=args.test_days)
    fit_window = IssueWindow(START + dt.timedelta(days=3), test_start, args.max_rows)
    test_window = IssueWindow(test_start, end - dt.timedelta(hours=24), 10**8)
    as_issued = FeatureSpec(future_weather=True)
    specs = {
        "no weather after t": FeatureSpec(future_weather=False),
        "trained on observed weather (oracle), served forecasts": FeatureSpec(
            future_weather=True, weather="observed-oracle"
        ),
        "trained on forecasts as issued (default)": as_issued,
        "as issued + CAMS forecast input": FeatureSpec(future_weather=True, cams=True),
    }
    results: dict[str, dict] = {}
    for name, spec in specs.items():
        t1 = time.perf_counter()
        fit = fit_model(TrainingData(obs, spec, places, inputs), fit_window, {"nthread": 1})
        # scored with the forecasts as issued: the oracle's columns are the same, fed forecasts
        served = spec if spec.weather == "as-issued" else as_issued
        m, _, _ = holdout_metrics(fit.model, TrainingData(obs, served, places, inputs), test_window)
        results[name] = {
            "groups": groups(m),
            "rows": m["rows"],
            "fit_rows": fit.rows["fit"],
            "seconds": round(time.perf_counter() - t1, 1),
        }
        if spec.weather == "observed-oracle":  # the offline upper bound, for reference
            oracle = TrainingData(obs, spec, places, inputs)
            m, _, _ = holdout_metrics(fit.model, oracle, test_window, as_served=False)
            results["oracle scored with observed weather (no deployment has it)"] = {
                "groups": groups(m),
                "rows": m["rows"],
                "fit_rows": fit.rows["fit"],
                "seconds": 0.0,
            }
    order = [
        "no weather after t",
        "trained on observed weather (oracle), served forecasts",
        "trained on forecasts as issued (default)",
        "as issued + CAMS forecast input",
        "oracle scored with observed weather (no deployment has it)",
    ]
    lines = [
        "| variant (scored on forecasts as issued) | h 1-3 | h 4-12 | h 13-24 | 1..24 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in order:
        g = results[name]["groups"]
        cells = " | ".join(
            f"{g[k]['ratio_persistence']:.3f}" for k in ("1-3", "4-12", "13-24", "1-24")
        )
        lines.append(f"| {name} | {cells} |")
    g = results["trained on forecasts as issued (default)"]["groups"]
    cams_cells = " | ".join(
        "n/a" if g[k]["cams_ratio_persistence"] is None else f"{g[k]['cams_ratio_persistence']:.3f}"
        for k in ("1-3", "4-12", "13-24", "1-24")
    )
    lines.append(f"| CAMS-like forecast itself (baseline) | {cams_cells} |")
    print("\n".join(lines))
    summary = {
        "args": vars(args) | {"out": str(args.out) if args.out else None},
        "world_s": round(made_s, 1),
        "rows": {k: v["rows"] for k, v in results.items()},
        "results": results,
    }
    print(json.dumps(summary, indent=1, default=str))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
