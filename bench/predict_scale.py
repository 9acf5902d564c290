"""Benchmark: one predict run on DuckDB for 12, 1,000 and 10,000 locations x 24 horizons.

    .venv/bin/python bench/predict_scale.py [--sizes 12 1000 10000]

Set-up (not timed): a fresh home per size; 35 days of the `synthetic` source and one train
run give a production model; then N bench locations (random coordinates, 2 per 1 degree
cell on average at 10,000) are registered with 96 hours of hourly observations (the
synthetic series of the real locations, shifted and scaled per location), and the real
locations are retired so that exactly N are forecast.

Timed: `run_predict` once, end to end, in a child process per size (its own peak RSS),
split by the run's own timings: warehouse reads, feature building, model prediction,
warehouse write, snapshot (accuracy query + JSON + store write). Then a second, idempotent
run at the same as_of (reads, rebuilds, writes nothing), and a run 3 hours later, whose
interval-offsets step (`intervals_s`) reads the first run's state and verifies against its
stored forecasts.
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
AS_OF = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
TRAIN_ENV = {
    "AIRCAST_TRAIN_MAX_ROWS": "20000",
    "AIRCAST_TRAIN_BACKTEST_FOLDS": "1",
    "AIRCAST_TRAIN_HOLDOUT_DAYS": "3",
    "AIRCAST_TRAIN_WINDOW_DAYS": "60",
}


def setup(home: Path, n: int) -> None:
    import numpy as np
    import pandas as pd

    os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local", **TRAIN_ENV)
    from common.ingest.job import IngestRequest, run_ingest
    from common.runtime import locations
    from common.runtime.services import get_services
    from common.train.job import TrainRequest, run_train

    svc = get_services()
    svc.warehouse.ensure_schema()
    start = AS_OF - dt.timedelta(days=35)
    run_ingest(IngestRequest(start=start, end=AS_OF, source="synthetic"), svc)
    assert run_train(TrainRequest(as_of=AS_OF - dt.timedelta(days=1)), svc)["promoted"]

    rng = np.random.default_rng(n)
    hours = pd.date_range(AS_OF - dt.timedelta(hours=95), AS_OF, freq="h")
    real = svc.warehouse.query(
        "SELECT * FROM observations WHERE ts > @a AND ts <= @b ORDER BY location_id, ts",
        {"a": hours[0] - pd.Timedelta(hours=1), "b": AS_OF},
    )
    real_ids = sorted(real["location_id"].unique())
    ids = [f"bench-{i:05d}" for i in range(n)]
    lat = rng.uniform(-50, 60, n)
    lon = rng.uniform(-180, 180, n)
    svc.warehouse.append(
        "locations",
        pd.DataFrame(
            {
                "location_id": ids,
                "name": [f"Bench {i}" for i in range(n)],
                "latitude": lat,
                "longitude": lon,
                "source": "synthetic",
                "timezone": "UTC",
                "active": True,
                "updated_at": dt.datetime.now(dt.UTC),
            }
        ),
    )
    locations.retire_missing(svc.warehouse, "synthetic", set(ids))
    value_cols = [
        c for c in real.columns if c not in {"location_id", "ts", "source", "run_id", "ingested_at"}
    ]
    frames = []
    for i, loc in enumerate(ids):
        base = real[real["location_id"] == real_ids[i % len(real_ids)]].set_index("ts")
        base = base.reindex(hours)
        scaled = base[value_cols].copy()
        for p in ("pm2_5", "pm10"):
            scaled[p] = scaled[p] * rng.uniform(0.5, 2.0)
        scaled.insert(0, "ts", hours)
        scaled.insert(0, "location_id", loc)
        frames.append(scaled)
    obs = pd.concat(frames, ignore_index=True)
    svc.warehouse.append(
        "observations_raw",
        obs.assign(source="synthetic", run_id="bench", ingested_at=dt.datetime.now(dt.UTC)),
    )


def child(home: Path) -> dict:
    os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local")
    from common.predict.job import PredictRequest, run_predict
    from common.runtime.services import get_services

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    first = run_predict(PredictRequest(as_of=AS_OF), get_services())
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    again = run_predict(PredictRequest(as_of=AS_OF), get_services())
    wall_again = time.perf_counter() - t1
    # The next hours' runs step the interval offsets from the state the first one stored
    # (its forecasts are not yet verifiable: their hours have no observations here, so
    # this times the state and verification queries over the stored forecasts).
    later = run_predict(PredictRequest(as_of=AS_OF + dt.timedelta(hours=3)), get_services())
    return {
        "locations": first["counts"]["locations"],
        "rows": first["counts"]["written"],
        "wall_s": round(wall, 3),
        "timings": first["timings"],
        "rerun_wall_s": round(wall_again, 3),
        "rerun_written": again["counts"]["written"],
        "intervals_s": first["timings"].get("intervals_s"),
        "later_intervals_s": later["timings"].get("intervals_s"),
        "later_snapshot_s": later["timings"].get("snapshot_s"),
        "rss_before_mb": round(rss0),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "snapshot_bytes": next(iter(first["targets"].values()))["snapshot"]["0"].get("bytes"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 1000, 10000])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--setup", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        setup(Path(args.setup[0]), int(args.setup[1]))
        return
    if args.child:
        print(json.dumps(child(Path(args.child))))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="aircast-bench-") as tmp:
        for n in args.sizes:
            home = Path(tmp) / f"home-{n}"
            run = [sys.executable, __file__]
            subprocess.run([*run, "--setup", str(home), str(n)], check=True, capture_output=True)
            out = subprocess.run(
                [*run, "--child", str(home)], check=True, capture_output=True, text=True
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(
        "| locations | rows | end to end s | reads s | features s | model s | write s "
        "| snapshot s | snapshot MB | idempotent re-run s | peak RSS MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t = r["timings"]
        print(
            f"| {r['locations']:,} | {r['rows']:,} | **{r['wall_s']:.2f}** | {t['read_s']:.2f} "
            f"| {t['features_s']:.2f} | {t['model_s']:.2f} | {t['write_s']:.2f} "
            f"| {t['snapshot_s']:.2f} | {r['snapshot_bytes'] / 1e6:.2f} | {r['rerun_wall_s']:.2f} "
            f"| {r['peak_rss_mb']} |"
        )


if __name__ == "__main__":
    main()
