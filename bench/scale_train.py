"""Scale benchmark, train part: one `aircast train` run over N synthetic locations x D days.

    .venv/bin/python bench/scale_train.py --locations 1000 10000 --days 365 [--code ../main]
    .venv/bin/python bench/scale_train.py --locations 100000 --days 365 --pool 2000

Set-up (not timed, reused when --home already holds it): N locations at seeded random
coordinates in a 24 x 30 degree box (a national network: ~5 others within 100 km at
1,000, ~50 at 10,000), each with D days of the `synthetic` source's own hourly series
(pollutants, weather, gaps), appended to `observations_raw` in chunks, then stored in
time order as hourly ingest runs would have written them. Beyond `--pool` locations the
series are scaled copies of the pool's, written by DuckDB (see `setup`).

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
BLOCK_DAYS = 30  # days per INSERT of the copies


def setup(home: Path, n: int, days: int, pool: int) -> dict:
    """Write N locations x D days of synthetic observations into a fresh home.

    The source generates `pool` series in pandas (about 9 s per 100 locations x 365 days);
    beyond the pool, location i is a copy of pool series i % pool with its pollutants
    scaled by its own hashed factor in [0.67, 1.49], written by DuckDB 30 days at a time in
    time order (SQL, streaming: no frame of N x D rows). The source has no spatial structure (each
    location's series is keyed by its id alone), so copies placed at their own random
    coordinates are as good neighbours as fresh series; the weather of copies repeats."""
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
    generated = min(n, pool)
    for a in range(0, generated, CHUNK):
        frames = [
            source.series(Location(ids[i], ids[i], lat[i], lon[i], "synthetic", TIMEZONE), hours)
            for i in range(a, min(a + CHUNK, generated))
        ]
        obs = pd.concat(frames, ignore_index=True)
        rows += svc.warehouse.append(
            "observations_raw", obs.assign(source="synthetic", run_id="scale", ingested_at=now)
        )
        print(
            f"setup: {min(a + CHUNK, generated)}/{n} locations generated, {rows:,} rows, "
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
        con.execute("SET enable_progress_bar = false")
        con.execute(f"CREATE TEMP TABLE sorted AS SELECT * FROM {raw} ORDER BY ts, location_id")
        con.execute(f"DELETE FROM {raw}")
        if n <= pool:
            con.execute(f"INSERT INTO {raw} SELECT * FROM sorted")
        else:
            rows = replicate(con, raw, n, pool, hours, t0)
        con.execute("CHECKPOINT")
    return {
        "locations": n,
        "days": days,
        "observations": rows,
        "generated": min(n, pool),
        "setup_s": round(time.perf_counter() - t0),
    }


def replicate(con: Any, raw: str, n: int, pool: int, hours: Any, t0: float) -> int:
    """Fill `raw` with N locations from the `pool` series in the temp table `sorted`: one
    INSERT ... SELECT per block of `BLOCK_DAYS` days (in time order), each block's pool rows
    joined to every copy that takes them, which DuckDB runs on all its threads. Rows are
    not sorted within a block: each thread writes its own row groups from a run of the
    time-ordered pool rows, so a row group spans hours, and DuckDB's zone maps prune by time
    as BigQuery's day partitions do. (Day by day, the same join wrote 2.4 M rows in ~23 s
    under load: a year was out of reach.) A cut set-up keeps whole blocks."""
    from common.core.schema import TABLES

    pollutants = ("pm2_5", "pm10", "nitrogen_dioxide", "ozone", "sulphur_dioxide")
    con.execute(
        "CREATE TEMP TABLE copies AS SELECT i, 'scale-' || lpad(i::VARCHAR, 6, '0') AS id, "
        f"'scale-' || lpad((i % {pool})::VARCHAR, 6, '0') AS of, "
        "exp(0.8 * (hash(i, 'scale') % 1000000 / 1e6 - 0.5)) AS f "
        f"FROM range({n}) t(i)"
    )
    con.execute("SET preserve_insertion_order = false")  # threads append their own row groups
    cols = [c.name for c in TABLES["observations_raw"].columns]
    select = ", ".join(
        "c.id AS location_id"
        if c == "location_id"
        else f"round(s.{c} * c.f, 1) AS {c}"
        if c in pollutants
        else f"s.{c}"
        for c in cols
    )
    total = 0
    step = 24 * BLOCK_DAYS
    for a in range(0, len(hours), step):
        lo, hi = hours[a], hours[min(a + step, len(hours)) - 1]
        total += con.execute(
            f"INSERT INTO {raw} ({', '.join(cols)}) SELECT {select} FROM sorted s "
            "JOIN copies c ON c.of = s.location_id WHERE s.ts BETWEEN ? AND ?",
            [lo.to_pydatetime(), hi.to_pydatetime()],
        ).fetchone()[0]
        print(
            f"setup: day {min(a + step, len(hours)) // 24}/{len(hours) // 24}, {total:,} rows, "
            f"{time.perf_counter() - t0:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    return total


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (every thread, DuckDB's too): on a shared,
    loaded machine the figure to hold against a timeout on dedicated vCPUs, not wall time."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def child(home: Path) -> dict:
    """One train run and its idempotent re-run, in this process."""
    os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local", AIRCAST_LOG_LEVEL="WARNING")
    from common.runtime.services import get_services
    from common.train.job import TrainRequest, run_train

    svc = get_services()
    # as_of: the end of the data (AS_OF, unless a set-up was cut short: its last hour)
    newest = svc.warehouse.query("SELECT MAX(ts) AS t FROM observations_raw")["t"][0]
    as_of = min(AS_OF, newest.to_pydatetime())
    reads: dict[str, float] = {"queries": 0, "rows": 0, "cpu_s": 0.0, "wall_s": 0.0}
    query = svc.warehouse.query

    log = os.environ.get("SCALE_TRAIN_QUERIES")  # the run's queries, for bench/bytes_billed.py
    sink = open(log, "w") if log else None  # noqa: SIM115 - closed at the end of the run

    def counted(sql: str, params: Mapping[str, Any] | None = None) -> Any:
        cpu, wall = cpu_seconds(), time.perf_counter()
        frame = query(sql, params)
        reads["cpu_s"] += cpu_seconds() - cpu  # the embedded DuckDB: BigQuery in the cloud
        reads["wall_s"] += time.perf_counter() - wall
        reads["queries"] += 1
        reads["rows"] += len(frame)
        if sink and reads["queries"] <= 100_000:
            line = {"function": "train", "as_of": as_of.isoformat(), "sql": sql}
            sink.write(json.dumps({**line, "params": params or {}}, default=str) + "\n")
        return frame

    svc.warehouse.query = counted  # type: ignore[method-assign]
    phases = _time_phases(reads)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    first = run_train(TrainRequest(as_of=as_of), svc)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    first_reads = dict(reads)
    if sink:
        sink.close()
        sink = None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (home / "scale-train-first.json").write_text(  # kept if the re-run is stopped
        json.dumps(
            {
                **first,
                "wall_s": wall,
                "cpu_s": cpu,
                "query_cpu_s": first_reads["cpu_s"],
                "query_wall_s": first_reads["wall_s"],
                "warehouse_queries": first_reads["queries"],
                "rows_read": first_reads["rows"],
                "peak_rss_mb": peak,
            }
        )
    )
    phases = {k: {m: round(v, 1) for m, v in d.items()} for k, d in phases.items()}
    t1 = time.perf_counter()
    _PHASE_ON[0] = False  # the re-run's steps are not the first run's
    again = run_train(TrainRequest(as_of=as_of), svc)
    return {
        "as_of": as_of.isoformat(),
        "status": first["status"],
        "version": first.get("version"),
        "same_version_on_rerun": again.get("version") == first.get("version"),
        "rows": first.get("counts"),
        "metrics": first.get("metrics"),
        "gate": first.get("gate"),  # the gate's record: verdict, reasons, scores by group
        "promoted": first.get("promoted"),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "warehouse_queries": int(first_reads["queries"]),
        "rows_read": int(first_reads["rows"]),
        "query_cpu_s": round(first_reads["cpu_s"], 1),  # CPU and wall inside the queries
        "phases": phases,  # of the first run: CPU, wall and queries by step
        "query_wall_s": round(first_reads["wall_s"], 1),
        "rerun_wall_s": round(time.perf_counter() - t1, 1),
        "rss_after_imports_mb": round(rss0),
        "peak_rss_mb": round(peak),
        "peak_rss_with_rerun_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


# The train run's steps, timed where the job calls them (module, name): the first run's CPU
# s, wall s, warehouse queries and CPU inside them, per step. Nested steps (the backtest's
# fits) are counted in the outer one only.
PHASES = (
    ("common.train.job", "summarise", "summary"),
    ("common.train.job", "observations", "sample source"),
    ("common.train.candidate", "fit_model", "fit (examples + XGBoost)"),
    ("common.train.candidate", "holdout_examples", "holdout rows"),
    ("common.train.candidate", "served_holdout", "holdout"),
    ("common.train.candidate", "backtest", "backtest folds"),
    ("common.train.job", "score_production", "production score"),
    ("common.train.job", "version_metadata", "metadata (drift references)"),
    ("common.train.job", "drift_sample", "drift sample"),
    ("common.train.job", "_save", "save"),
)
_PHASE_ON = [True]
_IN_PHASE: list[str] = []


def _time_phases(reads: dict[str, float]) -> dict[str, dict[str, float]]:
    """Wrap each step of `PHASES` that the timed code has (another checkout may lack one),
    adding its CPU, wall and the warehouse reads made inside it to the returned mapping."""
    import importlib

    out: dict[str, dict[str, float]] = {}
    for module, name, label in PHASES:
        mod = importlib.import_module(module)
        fn = getattr(mod, name, None)
        if fn is None:
            continue

        def timed(*a: Any, _fn: Any = fn, _label: str = label, **k: Any) -> Any:
            if not _PHASE_ON[0] or _IN_PHASE:
                return _fn(*a, **k)
            before = dict(reads)
            cpu, wall = cpu_seconds(), time.perf_counter()
            _IN_PHASE.append(_label)
            try:
                return _fn(*a, **k)
            finally:
                _IN_PHASE.pop()
                d = out.setdefault(
                    _label, {"cpu_s": 0.0, "wall_s": 0.0, "queries": 0, "query_cpu_s": 0.0}
                )
                d["cpu_s"] += cpu_seconds() - cpu
                d["wall_s"] += time.perf_counter() - wall
                d["queries"] += reads["queries"] - before["queries"]
                d["query_cpu_s"] += reads["cpu_s"] - before["cpu_s"]

        setattr(mod, name, timed)
    return out


def run(
    n: int, days: int, home: Path | None, code: Path, pool: int = 10_000, copy: bool = True
) -> dict:
    """Set up (unless `home` has the data) and time one train run of the code at `code`
    (on a copy of the data, or with `copy=False` on the set-up's own: one run only, as the
    next would find this one's version)."""
    home = home or Path(f"/tmp/aircast-scale-{n}x{days}")
    marker = home / "scale-setup.json"
    if not marker.exists():
        info = setup(home, n, days, pool)
        marker.write_text(json.dumps(info))
    info = json.loads(marker.read_text())
    with tempfile.TemporaryDirectory(prefix="aircast-scale-run-") as tmp:
        run_home = Path(tmp) / "home"  # a fresh copy: no version or pointer of earlier runs
        if copy:
            run_home.mkdir()
            shutil.copy2(home / "warehouse.duckdb", run_home / "warehouse.duckdb")
        else:
            run_home = home
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
    parser.add_argument(
        "--pool",
        type=int,
        default=10_000,
        help="series the source generates; more locations are scaled copies (SQL)",
    )
    parser.add_argument(
        "--queries",
        type=Path,
        help="write the timed run's queries (JSON lines) to QUERIES-<locations>.jsonl",
    )
    parser.add_argument(
        "--no-copy",
        action="store_true",
        help="train on the set-up's data itself (100,000 x 365: ~25 GB not copied)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-scale-train.json"))
    args = parser.parse_args()
    results = []
    for n in args.locations:
        home = args.home if args.home and len(args.locations) == 1 else None
        if args.queries:
            os.environ["SCALE_TRAIN_QUERIES"] = str(args.queries.resolve()) + f"-{n}.jsonl"
        r = run(n, args.days, home, args.code.resolve(), args.pool, not args.no_copy)
        print(json.dumps(r), file=sys.stderr, flush=True)
        results.append(r)
    args.out.write_text(json.dumps(results, indent=2))
    print(
        "| locations | days | observations | code | wall s | CPU s | re-run s | peak RSS MB "
        "| queries | rows read | fit rows | holdout rows | MAE / persistence |"
    )
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        m, rows = r.get("metrics") or {}, r.get("rows") or {}
        ratio = m["mae"] / m["persistence_mae"] if m else float("nan")
        print(
            f"| {r['locations']:,} | {r['days']} | {r['observations']:,} | {Path(r['code']).name} "
            f"| {r['wall_s']} | {r.get('cpu_s', '')} | {r['rerun_wall_s']} | {r['peak_rss_mb']:,} "
            f"| {r.get('warehouse_queries', '')} | {r.get('rows_read', 0):,} "
            f"| {rows.get('fit', 0):,} | {rows.get('holdout', 0):,} | {ratio:.3f} |"
        )
    print("\n| locations | code | step | CPU s | wall s | queries | CPU s in queries |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for r in results:
        for step, p in (r.get("phases") or {}).items():
            print(
                f"| {r['locations']:,} | {Path(r['code']).name} | {step} | {p['cpu_s']} "
                f"| {p['wall_s']} | {int(p['queries'])} | {p['query_cpu_s']} |"
            )


if __name__ == "__main__":
    if "--child" in sys.argv:
        sys.path.insert(0, os.environ.get("PYTHONPATH", str(ROOT)))
        print(json.dumps(child(Path(sys.argv[sys.argv.index("--child") + 1]))))
    else:
        sys.path.insert(0, str(ROOT))
        main()
