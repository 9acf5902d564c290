"""Benchmark: aircast at 1,000, 10,000 and 100,000 synthetic locations.

    .venv/bin/python bench/scale.py predict [--sizes 1000 10000 100000] [--per-shard 10000]
    .venv/bin/python bench/scale.py requests [--sizes 1000 10000]
    .venv/bin/python bench/scale_train.py --locations 1000 10000 --days 365   # train

`predict`: a fresh DuckDB home per size (set-up not timed): 35 days of the synthetic
source and one train run give a production model; N bench locations at random
coordinates get 96 hours of hourly observations (the synthetic series, scaled per
location). Then predict runs as ceil(N / per-shard) shards, each in its own child process
as each would run in its own Cloud Run instance: wall time and peak RSS per shard, the
snapshot part each writes, and the total (the shards run one after another here; in the
cloud they run side by side, so the cloud's wall time is the slowest shard's). Then the
hourly monitor (the health status over the whole network) in its own child process.

`requests`: the same set-up on the BigQuery emulator (bqemulator) and the Cloud Storage
emulator, through the official clients; one predict run and one ingest run (synthetic
source, 3 hours of N locations) with every HTTP request of the BigQuery client and every
gRPC call of its Storage Read and Write API clients counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
AS_OF = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
TRAIN_ENV = {
    "AIRCAST_TRAIN_MAX_ROWS": "20000",
    "AIRCAST_TRAIN_BACKTEST_FOLDS": "1",
    "AIRCAST_TRAIN_HOLDOUT_DAYS": "3",
    "AIRCAST_TRAIN_WINDOW_DAYS": "60",
    "AIRCAST_LOG_LEVEL": "WARNING",
}


def peak_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def bench_locations(n: int) -> Any:
    """N places at random coordinates (about 2.5 per square degree at 100,000, so each has
    a few neighbours within 100 km)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(n)
    return pd.DataFrame(
        {
            "location_id": [f"bench-{i:06d}" for i in range(n)],
            "name": [f"Bench {i}" for i in range(n)],
            "latitude": rng.uniform(-50, 60, n).round(4),
            "longitude": rng.uniform(-180, 180, n).round(4),
            "source": "synthetic",
            "timezone": "UTC",
            "active": True,
        }
    )


def setup(n: int) -> None:
    """In the environment's home: a production model and N locations with 96 h of data."""
    import numpy as np
    import pandas as pd

    from common.core.catalog import provenance_of
    from common.ingest.job import IngestRequest, run_ingest
    from common.runtime import locations
    from common.runtime.services import get_services
    from common.train.job import TrainRequest, run_train

    svc = get_services()
    svc.warehouse.ensure_schema()
    run_ingest(
        IngestRequest(start=AS_OF - dt.timedelta(days=35), end=AS_OF, source="synthetic"), svc
    )
    assert run_train(TrainRequest(as_of=AS_OF - dt.timedelta(days=1)), svc)["promoted"]

    hours = pd.date_range(AS_OF - dt.timedelta(hours=95), AS_OF, freq="h")
    real = svc.warehouse.query(
        "SELECT * FROM observations WHERE ts > @a AND ts <= @b ORDER BY location_id, ts",
        {"a": hours[0] - pd.Timedelta(hours=1), "b": AS_OF},
    )
    skip = {"location_id", "ts", "source", "run_id", "ingested_at", "provenance"}
    cols = [c for c in real.columns if c not in skip]
    base = np.stack(  # (real location, hour, column)
        [
            g.set_index("ts").reindex(hours)[cols].to_numpy(float)
            for _, g in real.groupby("location_id")
        ]
    )
    places = bench_locations(n)
    svc.warehouse.append("locations", places.assign(updated_at=dt.datetime.now(dt.UTC)))
    locations.retire_missing(svc.warehouse, "synthetic", set(places["location_id"]))
    rng = np.random.default_rng(n)
    for lo in range(0, n, 20_000):  # bounded set-up memory at 100,000
        k = min(n - lo, 20_000)
        values = base[(np.arange(lo, lo + k) % len(base))].copy()
        for c in ("pm2_5", "pm10"):
            values[:, :, cols.index(c)] *= rng.uniform(0.5, 2.0, k)[:, None]
        frame = pd.DataFrame(values.reshape(-1, len(cols)), columns=cols)
        frame.insert(0, "ts", np.tile(hours, k))
        frame.insert(0, "location_id", np.repeat(places["location_id"].to_numpy()[lo : lo + k], 96))
        svc.warehouse.append(
            "observations_raw",
            frame.assign(
                source="synthetic",
                run_id="bench",
                ingested_at=dt.datetime.now(dt.UTC),
                provenance=provenance_of("synthetic"),
            ),
        )


def shard_child(shard: int, shards: int) -> dict[str, Any]:
    """One predict shard in this process (as one Cloud Run instance would run it)."""
    import common.predict.job  # noqa: F401  (imports are not the run's cost)
    from common.predict.job import PredictRequest, run_predict
    from common.runtime.services import get_services

    after_imports = peak_mb()
    t0 = time.perf_counter()
    svc = get_services()
    answer = run_predict(PredictRequest(as_of=AS_OF, shard=shard, shards=shards), svc)
    wall = time.perf_counter() - t0
    part = answer["targets"][svc.settings.default_target]["snapshot"][str(shard)]
    return {
        "shard": shard,
        "locations": answer["counts"]["locations"],
        "rows": answer["counts"]["written"],
        "wall_s": round(wall, 2),
        "timings": answer["timings"],
        "peak_rss_mb": peak_mb(),
        "rss_after_imports_mb": after_imports,
        "snapshot_bytes": part.get("bytes"),
    }


def monitor_child() -> dict[str, Any]:
    """The monitor run after the shards (as its own Cloud Run instance would run it)."""
    import common.monitoring.job  # noqa: F401  (imports are not the run's cost)
    from common.monitoring.job import MonitorRequest, run_monitor
    from common.runtime.services import get_services

    t0 = time.perf_counter()
    answer = run_monitor(MonitorRequest(as_of=AS_OF), get_services())
    wall = round(time.perf_counter() - t0, 2)
    peak = peak_mb()
    return {
        "wall_s": wall,
        "health": answer["health"],
        "peak_rss_mb": peak,
        **snapshot_condition_times(),
    }


def snapshot_condition_times() -> dict[str, float]:
    """The snapshot condition alone, timed after the run (its parts warm in the page cache
    either way): as it reads the parts (their first kilobytes), and every part read and
    parsed whole, as it read them before predict wrote the counts in a part's head."""
    from common.forecasting.snapshot import snapshot_keys
    from common.monitoring import conditions
    from common.runtime.services import get_services

    svc = get_services()
    t0 = time.perf_counter()
    conditions.snapshot(svc, AS_OF)
    t1 = time.perf_counter()
    for key in snapshot_keys(svc.settings.predict_shards):
        json.loads(svc.store.get(key))
    t2 = time.perf_counter()
    return {"snapshot_condition_s": round(t1 - t0, 3), "parts_parsed_s": round(t2 - t1, 3)}


def _child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *args], env={**os.environ, **env}, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_predict_part(sizes: list[int], per_shard: int) -> None:
    rows: list[dict[str, Any]] = []
    monitors: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="aircast-scale-") as tmp:
        for n in sizes:
            env = {"AIRCAST_HOME": f"{tmp}/home-{n}", "AIRCAST_BACKEND": "local", **TRAIN_ENV}
            shards = max(1, math.ceil(n / per_shard))
            env["AIRCAST_PREDICT_SHARDS"] = str(shards)
            t0 = time.perf_counter()
            _child(["_setup", str(n)], env)
            print(f"set-up {n:,}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for k in range(shards):
                r = _child(["_shard", str(k), str(shards)], env)
                rows.append({"size": n, "shards": shards, **r})
                print(json.dumps(rows[-1]), file=sys.stderr)
            monitors[n] = _child(["_monitor"], env)
            print(json.dumps({"size": n, "monitor": monitors[n]}), file=sys.stderr)
    print(
        "| locations | shards | shard | locations in shard | wall s | reads s | features s "
        "| model s | write s | snapshot s | snapshot part MB | peak RSS MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t = r["timings"]
        print(
            f"| {r['size']:,} | {r['shards']} | {r['shard']} | {r['locations']:,} "
            f"| **{r['wall_s']:.2f}** | {t['read_s']:.2f} | {t['features_s']:.2f} "
            f"| {t['model_s']:.2f} | {t['write_s']:.2f} | {t['snapshot_s']:.2f} "
            f"| {r['snapshot_bytes'] / 1e6:.2f} | {r['peak_rss_mb']} |"
        )
    print()
    print("| locations | shards | total wall s (one after another) | slowest shard s "
          "| largest peak RSS MB | largest part MB |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        mine = [r for r in rows if r["size"] == n]
        print(
            f"| {n:,} | {mine[0]['shards']} | {sum(r['wall_s'] for r in mine):.1f} "
            f"| {max(r['wall_s'] for r in mine):.2f} | {max(r['peak_rss_mb'] for r in mine)} "
            f"| {max(r['snapshot_bytes'] for r in mine) / 1e6:.2f} |"
        )
    print()
    print("| locations | monitor wall s | monitor peak RSS MB | snapshot condition s "
          "| every part parsed whole s |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|")
    for n, m in monitors.items():
        print(f"| {n:,} | {m['wall_s']:.2f} | {m['peak_rss_mb']} "
              f"| {m['snapshot_condition_s']:.3f} | {m['parts_parsed_s']:.3f} |")  # fmt: skip


def requests_child(n: int, workdir: str) -> dict[str, Any]:
    """Set up N locations locally (DuckDB: the model is trained there, as on a laptop), copy
    the model and the data to the emulators, then count the BigQuery client's HTTP requests
    in one predict run and one ingest run on them."""
    import pandas as pd

    from common.core.config import load_settings
    from common.ingest.job import IngestRequest, run_ingest
    from common.predict.job import PredictRequest, run_predict
    from common.runtime import services
    from common.runtime.services import Services, get_services
    from common.storage import open_store
    from tests.emulators import bigquery_emulator, storage_emulator
    from tests.warehouse.test_warehouse_contract import counting_warehouse

    work = Path(workdir)
    setup(n)  # locally, in AIRCAST_HOME
    local = get_services()
    places = bench_locations(n)
    toml = work / "locations.toml"
    toml.write_text(
        "".join(
            f'[[location]]\nid = "{r.location_id}"\nname = "{r.name}"\nlatitude = {r.latitude}\n'
            f'longitude = {r.longitude}\nsource = "synthetic"\ntimezone = "UTC"\n\n'
            for r in places.itertuples()
        )
    )
    with (
        bigquery_emulator("aircast-bench", work) as bq,
        storage_emulator("aircast-bench", work) as gcs,
    ):
        settings = load_settings(
            backend="gcp",
            home=work / "gcp-home",
            project="aircast-bench",
            bucket="aircast-bench",
            bigquery_endpoint=bq.rest,
            bigquery_storage_endpoint=bq.grpc,
            storage_endpoint=gcs,
            source="synthetic",
            locations_file=toml,
        )
        warehouse, session = counting_warehouse(settings)  # every HTTP request counted
        store = open_store(settings)
        for key in local.store.list("models/"):
            store.put(key, local.store.get(key))
        for table, sql in (
            ("locations", "SELECT * FROM current_locations"),
            ("observations_raw", "SELECT * FROM observations_raw WHERE ts > @start"),
        ):
            rows = local.warehouse.query(sql, {"start": AS_OF - dt.timedelta(hours=96)})
            if table == "locations":
                rows = rows.assign(updated_at=pd.Timestamp.now(tz="UTC"))
            warehouse.append(table, rows)
        counted = Services(settings, warehouse, store)
        services.reset()
        out: dict[str, Any] = {"locations": n}
        session.calls.clear()
        answer = run_predict(PredictRequest(as_of=AS_OF), counted)
        out["predict_requests"] = len(session.calls)
        out["predict_rows"] = answer["counts"]["written"]
        out["predict_kinds"] = kinds(session.calls)
        session.calls.clear()
        start, end = AS_OF + dt.timedelta(hours=1), AS_OF + dt.timedelta(hours=3)
        ingest = run_ingest(IngestRequest(start=start, end=end), counted)
        out["ingest_requests"] = len(session.calls)
        out["ingest_rows"] = ingest["counts"].get("written")
        out["ingest_kinds"] = kinds(session.calls)
    return out


def kinds(calls: list[str]) -> dict[str, int]:
    """Requests by what they are: queries, load jobs (insert + upload), GETs (result
    pages beyond the first, job polls, table reads) and Storage API calls (gRPC)."""
    out = {"queries": 0, "load jobs": 0, "uploads": 0, "gets": 0, "reads": 0, "writes": 0}
    for call in calls:
        method, url = call.split(" ", 1)
        name = url.rsplit("/", 1)[-1]
        if method == "GRPC":  # Storage Read API (sessions, streams) or Write API calls
            out["reads" if "BigQueryRead/" in url else "writes"] += 1
        elif method == "POST" and name == "queries":
            out["queries"] += 1
        elif method == "POST" and name == "jobs":
            out["load jobs"] += 1
        elif method in ("PUT", "POST"):
            out["uploads"] += 1
        else:
            out["gets"] += 1
    return out


def run_requests_part(sizes: list[int]) -> None:
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="aircast-scale-bq-") as tmp:
            env = {"AIRCAST_HOME": f"{tmp}/home", "AIRCAST_BACKEND": "local", **TRAIN_ENV}
            rows.append(_child(["_requests", str(n), tmp], env))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print("| locations | run | rows written | BigQuery requests | queries | load jobs "
          "| uploads | GETs (result pages, polls) | Storage Read calls "
          "| Storage Write calls |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for run in ("predict", "ingest"):
            k = r[f"{run}_kinds"]
            print(
                f"| {r['locations']:,} | {run} | {r[f'{run}_rows']:,} "
                f"| **{r[f'{run}_requests']}** | {k['queries']} | {k['load jobs']} "
                f"| {k['uploads']} | {k['gets']} | {k['reads']} | {k['writes']} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = ["predict", "requests", "_setup", "_shard", "_monitor", "_requests"]
    parser.add_argument("part", choices=parts)
    parser.add_argument("args", nargs="*")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--per-shard", type=int, default=10_000)
    a = parser.parse_args()
    if a.part == "_setup":
        setup(int(a.args[0]))
        print("{}")
    elif a.part == "_shard":
        print(json.dumps(shard_child(int(a.args[0]), int(a.args[1]))))
    elif a.part == "_monitor":
        print(json.dumps(monitor_child()))
    elif a.part == "_requests":
        print(json.dumps(requests_child(int(a.args[0]), a.args[1])))
    elif a.part == "predict":
        run_predict_part(a.sizes or [1000, 10000, 100000], a.per_shard)
    else:
        run_requests_part(a.sizes or [1000, 10000])


if __name__ == "__main__":
    main()
