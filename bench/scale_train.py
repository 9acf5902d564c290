"""Scale benchmark, train part: one `aircast train` run over N synthetic locations x D days.

    .venv/bin/python bench/scale_train.py --locations 1000 10000 --days 365 [--code ../main]

Set-up (not timed, reused when --home already holds it): N locations at seeded random
coordinates in a 24 x 30 degree box (a national network: ~5 others within 100 km at
1,000, ~50 at 10,000), each with D days of the `synthetic` source's own hourly series
(pollutants, weather, gaps), appended to `observations_raw` in chunks, then stored in
time order as hourly ingest runs would have written them.

Timed: `run_train` once at as_of = the end of the data, default settings (row budget,
window, holdout, backtest folds), in a child process on a fresh copy of the data so that
its peak RSS (`ru_maxrss`) is the run's own; then the same request again (the idempotent
re-run: the version is found and only the gate is decided again). The warehouse queries
of the first run and the rows they returned are counted. `--code DIR` times another
checkout's code (e.g. ../main, for a before/after) on the same data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AS_OF = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
BOX = ((40.0, 64.0), (-5.0, 25.0))  # lat, lon
TIMEZONE = "Europe/Berlin"
CHUNK = 100  # locations per append


def setup(home: Path, n: int, days: int) -> dict:
    """Write N locations x D days of synthetic observations into a fresh home."""
    import numpy as np
    import pandas as pd

    os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local", AIRCAST_LOG_LEVEL="WARNING")
    from common.runtime.services import get_services
    from common.sources.base import Location
    from common.sources.synthetic import SyntheticSource

    svc = get_services()
    svc.warehouse.ensure_schema()
    rng = np.random.default_rng(n)
    ids = [f"scale-{i:06d}" for i in range(n)]
    lat = rng.uniform(*BOX[0], n).round(4)
    lon = rng.uniform(*BOX[1], n).round(4)
    now = dt.datetime.now(dt.UTC)
    svc.warehouse.append(
        "locations",
        pd.DataFrame(
            {
                "location_id": ids,
                "name": ids,
                "latitude": lat,
                "longitude": lon,
                "source": "synthetic",
                "timezone": TIMEZONE,
                "active": True,
                "updated_at": now,
            }
        ),
    )
    source = SyntheticSource(svc.settings)
    hours = pd.date_range(AS_OF - dt.timedelta(days=days) + dt.timedelta(hours=1), AS_OF, freq="h")
    t0, rows = time.perf_counter(), 0
    for a in range(0, n, CHUNK):
        frames = [
            source.series(Location(ids[i], ids[i], lat[i], lon[i], "synthetic", TIMEZONE), hours)
            for i in range(a, min(a + CHUNK, n))
        ]
        obs = pd.concat(frames, ignore_index=True)
        rows += svc.warehouse.append(
            "observations_raw", obs.assign(source="synthetic", run_id="scale", ingested_at=now)
        )
        print(
            f"setup: {min(a + CHUNK, n)}/{n} locations, {rows:,} rows, "
            f"{time.perf_counter() - t0:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    # Stored as hourly ingest runs would have stored them: in time order (the generator
    # goes location by location; DuckDB's zone maps, like BigQuery's day partitions, then
    # prune time ranges).
    import duckdb

    with duckdb.connect(str(svc.settings.warehouse_path)) as con:
        raw = f'"{svc.settings.dataset}".observations_raw'
        con.execute("SET memory_limit = '6GB'")
        con.execute(f"CREATE TEMP TABLE sorted AS SELECT * FROM {raw} ORDER BY ts, location_id")
        con.execute(f"DELETE FROM {raw}")
        con.execute(f"INSERT INTO {raw} SELECT * FROM sorted")
        con.execute("CHECKPOINT")
    return {
        "locations": n,
        "days": days,
        "observations": rows,
        "setup_s": round(time.perf_counter() - t0),
    }


def child(home: Path) -> dict:
    """One train run and its idempotent re-run, in this process."""
    os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local", AIRCAST_LOG_LEVEL="WARNING")
    from common.runtime.services import get_services
    from common.train.job import TrainRequest, run_train

    svc = get_services()
    reads = {"queries": 0, "rows": 0}
    query = svc.warehouse.query

    def counted(sql: str, params: Mapping[str, Any] | None = None) -> Any:
        frame = query(sql, params)
        reads["queries"] += 1
        reads["rows"] += len(frame)
        return frame

    svc.warehouse.query = counted  # type: ignore[method-assign]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    first = run_train(TrainRequest(as_of=AS_OF), svc)
    wall = time.perf_counter() - t0
    first_reads = dict(reads)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t1 = time.perf_counter()
    again = run_train(TrainRequest(as_of=AS_OF), svc)
    return {
        "status": first["status"],
        "version": first.get("version"),
        "same_version_on_rerun": again.get("version") == first.get("version"),
        "rows": first.get("counts"),
        "metrics": first.get("metrics"),
        "wall_s": round(wall, 1),
        "warehouse_queries": first_reads["queries"],
        "rows_read": first_reads["rows"],
        "rerun_wall_s": round(time.perf_counter() - t1, 1),
        "rss_after_imports_mb": round(rss0),
        "peak_rss_mb": round(peak),
        "peak_rss_with_rerun_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run(n: int, days: int, home: Path | None, code: Path) -> dict:
    """Set up (unless `home` has the data) and time one train run of the code at `code`."""
    home = home or Path(f"/tmp/aircast-scale-{n}x{days}")
    marker = home / "scale-setup.json"
    if not marker.exists():
        info = setup(home, n, days)
        marker.write_text(json.dumps(info))
    info = json.loads(marker.read_text())
    with tempfile.TemporaryDirectory(prefix="aircast-scale-run-") as tmp:
        run_home = Path(tmp) / "home"  # a fresh copy: no version or pointer of earlier runs
        run_home.mkdir()
        shutil.copy2(home / "warehouse.duckdb", run_home / "warehouse.duckdb")
        env = {**os.environ, "PYTHONPATH": str(code)}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(run_home)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=code)
    return {**info, "code": str(code), **json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, nargs="+", default=[1000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--home", type=Path, help="data home (default /tmp/aircast-scale-NxD)")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose code is timed")
    parser.add_argument("--out", type=Path, default=Path("bench-scale-train.json"))
    args = parser.parse_args()
    results = []
    for n in args.locations:
        home = args.home if args.home and len(args.locations) == 1 else None
        r = run(n, args.days, home, args.code.resolve())
        print(json.dumps(r), file=sys.stderr, flush=True)
        results.append(r)
    args.out.write_text(json.dumps(results, indent=2))
    print(
        "| locations | days | observations | code | wall s | re-run s | peak RSS MB "
        "| queries | rows read | fit rows | holdout rows | MAE / persistence |"
    )
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        m, rows = r.get("metrics") or {}, r.get("rows") or {}
        ratio = m["mae"] / m["persistence_mae"] if m else float("nan")
        print(
            f"| {r['locations']:,} | {r['days']} | {r['observations']:,} | {Path(r['code']).name} "
            f"| {r['wall_s']} | {r['rerun_wall_s']} | {r['peak_rss_mb']:,} "
            f"| {r.get('warehouse_queries', '')} | {r.get('rows_read', 0):,} "
            f"| {rows.get('fit', 0):,} | {rows.get('holdout', 0):,} | {ratio:.3f} |"
        )


if __name__ == "__main__":
    if "--child" in sys.argv:
        sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)))
        print(json.dumps(child(Path(sys.argv[sys.argv.index("--child") + 1]))))
    else:
        sys.path.insert(0, str(ROOT))
        main()
