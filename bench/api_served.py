"""The api as deployed (functions-framework, gunicorn master + worker, 8 threads) holding
every part of a large network, over HTTP: its peak RSS after every location is looked up.

    nice -n 10 .venv/bin/python bench/api_served.py [--locations 100000] [--per-part 10000]

The parts are bench/api_memory.py's (tests.api_fixtures.make_snapshot shapes, ~40 % larger
per location than predict's), in a local store; the api reads them on first use. Every
location is looked up once from 8 client threads, then random ones for --lookup-seconds
(bench/e2e_scale.py's `lookups`); the peak is VmHWM of master + worker (e2e_scale's
`peak_mib`). What bench/e2e_scale.py measures for the api, without the pipeline before it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_memory import write_parts  # noqa: E402
from e2e_scale import lookups, peak_mib  # noqa: E402

from common.scheduling.stack import free_port, start_function, stop  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--locations", type=int, default=100_000)
    ap.add_argument("--per-part", type=int, default=10_000)
    ap.add_argument("--lookup-seconds", type=float, default=20.0)
    a = ap.parse_args()
    shards = max(1, -(-a.locations // a.per_part))
    tmp = Path(tempfile.mkdtemp(prefix="aircast-apiserved-"))
    t = time.perf_counter()
    size = write_parts(tmp / "home" / "artifacts", a.locations, shards)
    print(f"{a.locations:,} locations in {shards} parts, {size / 2**20:.0f} MiB of JSON "
          f"({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip
    env = {
        "AIRCAST_BACKEND": "local", "AIRCAST_HOME": str(tmp / "home"),
        "AIRCAST_PREDICT_SHARDS": str(shards), "AIRCAST_LOG_LEVEL": "WARNING", "THREADS": "8",
    }  # fmt: skip
    api = start_function("api", free_port(), env=env, log_dir=tmp / "logs")
    try:
        started = round(peak_mib(api.process.pid))
        out = {"locations": a.locations, "parts": shards, "json_mib": round(size / 2**20),
               "started_peak_mib": started}  # fmt: skip
        out["lookups"] = lookups(api.url, a.locations, a.lookup_seconds, prefix="loc")
        out["peak_mib"] = round(peak_mib(api.process.pid))
    finally:
        stop([api])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
