"""The train window's summary alone on a `bench/scale_train.py` data home, two checkouts
side by side (e.g. before and after a change to `common.train.observations.summarise`).

    nice -n 10 .venv/bin/python bench/train_summary.py \\
        --home /tmp/aircast-scale-10000x365-pool2000 --code /tmp/before --code .

Each checkout runs in its own child process, one after the other, on the same file (read
only): `summarise` over train's default window ending at the data's end, as `run_train`
calls it. Printed per checkout: CPU seconds of the process (user + sys, every thread: the
embedded DuckDB's included, which BigQuery does in the cloud), of them inside warehouse
queries, wall seconds, queries, rows they returned, peak RSS (VmHWM) and the fingerprint
(the same data must give the same one).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _vmhwm_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    raise LookupError("VmHWM")


def child(home: Path) -> dict:
    """`summarise` once, as run_train calls it, with its queries counted."""
    import datetime as dt

    os.environ.update(AIRCAST_HOME=str(home), AIRCAST_BACKEND="local", AIRCAST_LOG_LEVEL="WARNING")
    from common.forecasting.features import FeatureSpec
    from common.runtime import locations
    from common.runtime.services import get_services
    from common.train.observations import summarise

    svc = get_services()
    newest = svc.warehouse.query("SELECT MAX(ts) AS t FROM observations_raw")["t"][0]
    as_of = newest.to_pydatetime()
    start = as_of - dt.timedelta(days=svc.settings.train_window_days)
    places = locations.current(svc.warehouse)
    reads = {"queries": 0, "rows": 0, "cpu_s": 0.0, "wall_s": 0.0}
    query = svc.warehouse.query

    def counted(sql, params=None):  # type: ignore[no-untyped-def]
        cpu, wall = _cpu(), time.perf_counter()
        frame = query(sql, params)
        reads["cpu_s"] += _cpu() - cpu
        reads["wall_s"] += time.perf_counter() - wall
        reads["queries"] += 1
        reads["rows"] += len(frame)
        return frame

    svc.warehouse.query = counted  # type: ignore[method-assign]
    args = [svc.warehouse, FeatureSpec(), start, as_of]
    if "locations" in inspect.signature(summarise).parameters:  # the sliced summary's
        args.append(len(places))
    cpu0, t0 = _cpu(), time.perf_counter()
    summary = summarise(*args)
    return {
        "cpu_s": round(_cpu() - cpu0, 1),
        "query_cpu_s": round(reads["cpu_s"], 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "query_wall_s": round(reads["wall_s"], 1),
        "queries": reads["queries"],
        "rows_returned": reads["rows"],
        "peak_rss_mb": _vmhwm_mb(),
        "observations": summary.observations,
        "locations": summary.locations,
        "fingerprint": summary.fingerprint,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a scale_train data home")
    parser.add_argument("--code", type=Path, action="append", help="checkouts to time, in turn")
    args = parser.parse_args()
    print(
        "| code | CPU s | in queries | wall s | queries | rows back | peak RSS MiB | fingerprint |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for code in args.code or [Path(__file__).resolve().parents[1]]:
        env = {**os.environ, "PYTHONPATH": str(code.resolve())}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(args.home)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps({"code": str(code), **r}), file=sys.stderr, flush=True)
        print(
            f"| {code} | {r['cpu_s']} | {r['query_cpu_s']} | {r['wall_s']} | {r['queries']} "
            f"| {r['rows_returned']:,} | {r['peak_rss_mb']:,} | {r['fingerprint'][:12]} |",
            flush=True,
        )


if __name__ == "__main__":
    if "--child" in sys.argv:
        sys.path.insert(0, os.environ["PYTHONPATH"])
        print(json.dumps(child(Path(sys.argv[sys.argv.index("--child") + 1]))))
    else:
        main()
