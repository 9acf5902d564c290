"""Benchmark: train on the 8 Beijing stations, evaluate on a year of later issue times.

    .venv/bin/python bench/train_beijing.py [--max-rows N] [--out results.json] [--variants 0]

1. Backfills ../shared/data/beijing-multisite (2013-03-01 .. 2017-02-28) into a fresh
   DuckDB home with the `csv` source, as `aircast backfill` does.
2. For each variant (without / with weather at the target hour) in its own child process,
   so that peak RSS is that variant's own: fits the model on issue times before
   2016-03-01 with the production code (`common.forecasting.training.fit_model`, default row budget
   and parameters), then scores every issue time 2016-03-01 .. 2017-02-27 with the model,
   persistence and seasonal naive on the same rows (`common.forecasting.training.holdout_metrics`).
3. Prints a markdown table for docs/benchmarks.md and writes the raw numbers as JSON.

The csv files carry observed weather only, so "with weather" uses the observed weather at
the target hour as the forecast (as training does): an upper bound on what a real weather
forecast would add.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "beijing-multisite"
UTC = dt.UTC
DATA_START = dt.datetime(2013, 3, 1, tzinfo=UTC)
DATA_END = dt.datetime(2017, 2, 28, 23, tzinfo=UTC)
TEST_START = dt.datetime(2016, 3, 1, tzinfo=UTC)
TEST_END = dt.datetime(2017, 2, 27, tzinfo=UTC)
HORIZONS = (1, 6, 12, 24)


def backfill(home: Path) -> float:
    from common.ingest.job import IngestRequest, run_ingest
    from common.runtime.services import get_services

    os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local", AIRCAST_CSV_PATH=str(DATA))
    svc = get_services()
    svc.warehouse.ensure_schema()
    t0 = time.perf_counter()
    a = DATA_START
    while a <= DATA_END:
        b = min(a + dt.timedelta(days=92), DATA_END + dt.timedelta(hours=1))
        req = IngestRequest(source="csv", path=str(DATA), start=a, end=b - dt.timedelta(hours=1))
        run_ingest(req, svc)
        a = b
    return time.perf_counter() - t0


def variant(home: Path, future_weather: bool, max_rows: int | None) -> dict:
    """One fit + evaluation; runs in a child process (see main)."""
    os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local", AIRCAST_CSV_PATH=str(DATA))
    from common.forecasting.features import HISTORY_HOURS, FeatureSpec
    from common.forecasting.training import IssueWindow, TrainingData, fit_model, holdout_metrics
    from common.runtime import locations
    from common.runtime.services import get_services
    from common.train.observations import observations, summarise

    svc = get_services()
    s = svc.settings
    # The Beijing csv holds no forecasts: "with weather" is the oracle study (the observed
    # weather at the target hours), named so; bench/forecast_error.py measures as-issued.
    spec = FeatureSpec(s.target, s.horizon, future_weather, weather="observed-oracle")
    # What the train job reads: the whole window as a frame when it fits one grid (these 8
    # stations do), else the sampled selection from the warehouse.
    start = DATA_START - dt.timedelta(hours=1)
    summary = summarise(svc.warehouse, spec, start, DATA_END)
    obs = observations(svc.warehouse, spec, start, DATA_END, summary)
    data = TrainingData(obs, spec, locations.current(svc.warehouse))
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert summary.oldest is not None, "no observations in the training window"
    first = summary.oldest + dt.timedelta(hours=HISTORY_HOURS)
    budget = max_rows or s.train_max_rows
    t0 = time.perf_counter()
    fit = fit_model(data, IssueWindow(first, TEST_START, budget), params={"nthread": 2})
    fit_s = time.perf_counter() - t0
    rss_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t1 = time.perf_counter()
    metrics, _, _ = holdout_metrics(fit.model, data, IssueWindow(TEST_START, TEST_END, 10**8))
    eval_s = time.perf_counter() - t1
    return {
        "future_weather": future_weather,
        "rows": fit.rows,
        "blocks": fit.blocks,
        "trees": fit.model.state().get("best_iterations"),
        "shrink": fit.model.shrink,  # per-horizon share of the change served
        "fit_s": round(fit_s, 1),
        "eval_s": round(eval_s, 1),
        "read": "whole window" if hasattr(obs, "columns") else "sampled",
        "rss_after_data_mb": round(rss_data),
        "peak_rss_fit_mb": round(rss_fit),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "metrics": metrics,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| variant | h | model MAE | model RMSE | persistence MAE | persistence RMSE "
        "| seasonal naive MAE | seasonal naive RMSE | MAE / persistence | p10-p90 coverage |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        name = "observed weather at t+h (oracle)" if r["future_weather"] else "no weather after t"
        by_h = {row["horizon_h"]: row for row in r["metrics"]["by_horizon"]}
        for h in HORIZONS:
            row = by_h[h]
            lines.append(
                f"| {name} | {h} | {row['mae']:.2f} | {row['rmse']:.2f} "
                f"| {row['persistence_mae']:.2f} | {row['persistence_rmse']:.2f} "
                f"| {row['seasonal_naive_mae']:.2f} | {row['seasonal_naive_rmse']:.2f} "
                f"| {row['mae'] / row['persistence_mae']:.3f} | {row['coverage']:.3f} |"
            )
        m = r["metrics"]
        lines.append(
            f"| {name} | **1..24** | **{m['model']['mae']:.2f}** | {m['model']['rmse']:.2f} "
            f"| {m['persistence']['mae']:.2f} | {m['persistence']['rmse']:.2f} "
            f"| {m['seasonal_naive']['mae']:.2f} | {m['seasonal_naive']['rmse']:.2f} "
            f"| **{m['model']['mae'] / m['persistence']['mae']:.3f}** "
            f"| {m['model']['coverage']:.3f} |"
        )
    lines += [
        "",
        "| variant | fit rows (fit/val/cal) | fit wall s | eval wall s | eval rows "
        "| peak RSS after fit MB | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        name = "observed weather at t+h (oracle)" if r["future_weather"] else "no weather after t"
        rows = "/".join(f"{r['rows'][k]:,}" for k in ("fit", "validation", "calibration"))
        lines.append(
            f"| {name} | {rows} | {r['fit_s']} | {r['eval_s']} | {r['metrics']['rows']:,} "
            f"| {r['peak_rss_fit_mb']} | {r['peak_rss_mb']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, help="fit row budget (default: settings)")
    parser.add_argument("--out", type=Path, default=Path("bench-train-beijing.json"))
    parser.add_argument(
        "--variants",
        default="0,1",
        help="weather variants to run: 0 = no weather after t, 1 = with it (default both)",
    )
    parser.add_argument("--child", nargs=2, metavar=("HOME", "WEATHER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = variant(Path(args.child[0]), args.child[1] == "1", args.max_rows)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="aircast-bench-") as tmp:
        home = Path(tmp) / "home"
        seconds = backfill(home)
        print(f"backfill 2013-03..2017-02 (8 stations): {seconds:.1f}s", file=sys.stderr)
        results = []
        for weather in args.variants.split(","):
            cmd = [sys.executable, __file__, "--child", str(home), weather]
            if args.max_rows:
                cmd += ["--max-rows", str(args.max_rows)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            r = results[-1]
            print(f"variant weather={weather}: fit {r['fit_s']}s", file=sys.stderr)
    args.out.write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
