"""Benchmark: backfill one year of the 8 Beijing stations (csv source) into DuckDB.

Each configuration runs `aircast backfill` in a fresh child process with its own
AIRCAST_HOME, so every peak-memory figure is that run's own (ru_maxrss of the child).
Configurations differ only in --chunk-days and run one after another in one invocation,
so their ratios are comparable even on a noisy shared machine. Each child also re-runs
the same backfill: the idempotent pass, where every row is compared and none is written.

    .venv/bin/python bench/ingest_backfill.py                 # 2016, chunks of 7/30/366 days
    .venv/bin/python bench/ingest_backfill.py --year 2015 --chunk-days 7

Needs ../shared/data/beijing-multisite (or --data DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "beijing-multisite"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(data: str, year: int, chunk_days: int, home: str) -> dict:
    """One backfill (and its idempotent re-run) in this process; returns the measurements."""
    os.environ.update(AIRCAST_HOME=home, AIRCAST_BACKEND="local", AIRCAST_LOG_LEVEL="WARNING")
    import common.ingest.job  # noqa: F401  (imports are not the ingest's cost)
    from common.ops.cli import main
    from common.runtime.services import get_services

    after_imports = peak_mb()
    args = ["backfill", "--source", "csv", "--path", data, "--start", f"{year}-01-01T00:00Z",
            "--end", f"{year}-12-31T23:00Z", "--chunk-days", str(chunk_days)]  # fmt: skip
    began = time.perf_counter()
    main.main(args, standalone_mode=False)
    first = time.perf_counter() - began
    peak_first = peak_mb()
    began = time.perf_counter()
    main.main(args, standalone_mode=False)
    second = time.perf_counter() - began
    wh = get_services().warehouse
    rows = int(wh.query("SELECT COUNT(*) AS n FROM observations")["n"].iloc[0])
    raw = int(wh.query("SELECT COUNT(*) AS n FROM observations_raw")["n"].iloc[0])
    return {
        "chunk_days": chunk_days,
        "rows": rows,
        "raw_rows": raw,
        "seconds": round(first, 2),
        "rows_per_s": round(rows / first),
        "rerun_seconds": round(second, 2),
        "rerun_rows_per_s": round(rows / second),
        "peak_rss_mb": round(peak_first),
        "peak_rss_after_rerun_mb": round(peak_mb()),
        "rss_after_imports_mb": round(after_imports),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--year", type=int, default=2016)
    parser.add_argument("--chunk-days", type=int, nargs="+", default=[7, 30, 366])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.data, args.year, args.chunk_days[0], args.home)))
        return
    if not Path(args.data).is_dir():
        sys.exit(f"{args.data} not found: the Beijing files live in ../shared/data")
    results = []
    for chunk in args.chunk_days:
        with tempfile.TemporaryDirectory(prefix="aircast-bench-") as home:
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--data", args.data, "--year",
                 str(args.year), "--chunk-days", str(chunk), "--home", home],
                cwd=ROOT, check=True, capture_output=True, text=True,
            )  # fmt: skip
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), file=sys.stderr)
    print(f"\nBeijing {args.year}, 8 stations, csv -> DuckDB; {platform.python_version()}, "
          f"{os.cpu_count()} cores\n")  # fmt: skip
    print("| chunk days | rows | backfill s | rows/s | re-run s (idempotent) | re-run rows/s "
          "| peak RSS MB | RSS after imports MB |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['chunk_days']} | {r['rows']:,} | {r['seconds']} | {r['rows_per_s']:,} | "
              f"{r['rerun_seconds']} | {r['rerun_rows_per_s']:,} | {r['peak_rss_mb']} | "
              f"{r['rss_after_imports_mb']} |")  # fmt: skip
        assert r["raw_rows"] == r["rows"], "the re-run wrote rows it should not have"


if __name__ == "__main__":
    main()
