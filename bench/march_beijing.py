"""Benchmark: the model the train job would fit on 2016-03-01 (one-year window, default
settings), scored on every issue time of March 2016 against persistence.

    .venv/bin/python bench/march_beijing.py [--max-rows N] [--out results.json]

A cheap stand-in for the March 2016 replay (docs/benchmarks.md): one fit instead of 32
daily ones. Backfills ../shared/data/beijing-multisite 2015-02-25 .. 2016-03-31 into a
fresh DuckDB home, plans the windows with the train job's own `plan_training` (history
before a 7-day holdout), fits with `fit_model` and scores March issue times with
`holdout_metrics`. Prints the ratio to persistence by horizon, the coverage and the
learned per-horizon shrinkage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "beijing-multisite"
UTC = dt.UTC
AS_OF = dt.datetime(2016, 3, 1, tzinfo=UTC)
MARCH_END = dt.datetime(2016, 3, 31, 23, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, help="fit row budget (default: settings)")
    parser.add_argument("--out", type=Path, default=Path("bench-march-beijing.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aircast-march-") as tmp:
        os.environ.update(AIRCAST_HOME=str(Path(tmp) / "home"), AIRCAST_BACKEND="local")
        from common.forecasting.features import FeatureSpec, grid_columns
        from common.forecasting.training import (
            IssueWindow,
            TrainingData,
            fit_model,
            holdout_metrics,
        )
        from common.ingest.job import IngestRequest, run_ingest
        from common.runtime import locations
        from common.runtime.services import get_services
        from common.train.observations import observations, summarise
        from common.train.plan import plan_training

        svc = get_services()
        svc.warehouse.ensure_schema()
        s = svc.settings
        window = dt.timedelta(days=s.train_window_days)
        start = AS_OF - window - dt.timedelta(days=1)
        run_ingest(IngestRequest(source="csv", path=str(DATA), start=start, end=MARCH_END), svc)
        spec = FeatureSpec(s.target, s.horizon, s.future_weather)
        summary = summarise(svc.warehouse, spec, AS_OF - window, AS_OF)
        obs = observations(svc.warehouse, spec, AS_OF - window, AS_OF, summary)  # what train reads
        places = locations.current(svc.warehouse)
        data = TrainingData(obs, spec, places)
        plan = plan_training(args.max_rows, s, summary, spec, AS_OF - window, AS_OF)
        t0 = time.perf_counter()
        fit = fit_model(data, plan.history, params={"nthread": s.train_threads})
        fit_s = time.perf_counter() - t0
        cols = ", ".join(grid_columns(spec))
        everything = svc.warehouse.query(
            f"SELECT location_id, ts, {cols} FROM observations ORDER BY ts, location_id"
        )
        march = IssueWindow(AS_OF, MARCH_END - dt.timedelta(hours=spec.horizon), 10**8)
        m, _, _ = holdout_metrics(fit.model, TrainingData(everything, spec, places), march)
    by_h = [
        {
            "h": r["horizon_h"],
            "ratio": round(r["mae"] / r["persistence_mae"], 3),
            "coverage": round(r["coverage"], 3),
        }
        for r in m["by_horizon"]
    ]
    result = {
        "fit_s": round(fit_s, 1),
        "rows": fit.rows,
        "trees": fit.model.best_iterations,
        "shrink": fit.model.shrink,
        "mean_ratio": round(m["model"]["mae"] / m["persistence"]["mae"], 3),
        "coverage": round(m["model"]["coverage"], 3),
        "by_horizon": by_h,
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "by_horizon"}))
    print("| h | MAE / persistence | coverage |\n|---:|---:|---:|")
    for r in by_h:
        print(f"| {r['h']} | {r['ratio']:.3f} | {r['coverage']:.3f} |")


if __name__ == "__main__":
    main()
