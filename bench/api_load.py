"""Forecast-lookup load and cold start of the api, side by side with a hello-world function.

    .venv/bin/python bench/api_load.py [--duration 10] [--rounds 3] [--connections 32]
        [--locations 200] [--shards 1]

Both functions are served by functions-framework on loopback with the same gunicorn
settings (WORKERS=1, THREADS=8: the framework's default on 2 cores), one after the other in
alternating rounds of `wrk` (Debian's package: `apt-get install wrk`), so the ratios compare
like with like on a shared machine. Requests rotate over `/v1/forecasts/<id>?hours=24` for
every location of a snapshot of --locations locations (24 horizons each); hello-world gets
the same URLs from the same wrk script and ignores them. Cold start: the in-process time to import
functions/api/main.py in a fresh interpreter, against importing pandas + xgboost +
google.cloud.bigquery (what a function that loads the model at import would pay), median of
--cold-runs alternating runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.core.sharding import shard_of  # noqa: E402
from common.forecasting.snapshot import snapshot_key  # noqa: E402
from common.scheduling import stack as localstack  # noqa: E402
from common.storage.local import LocalStore  # noqa: E402
from tests.api_fixtures import make_snapshot  # noqa: E402

GUNICORN = {"WORKERS": "1", "THREADS": "8"}
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}

IMPORT_MAIN = (
    "import importlib.util, sys, time; sys.path.insert(0, {root!r}); t = time.perf_counter();"
    "spec = importlib.util.spec_from_file_location('main', {root!r} + '/{main}');"
    "spec.loader.exec_module(importlib.util.module_from_spec(spec));"
    "print(time.perf_counter() - t)"
)
COLD = {
    "api": IMPORT_MAIN.replace("{main}", "functions/api/main.py"),
    "hello": IMPORT_MAIN.replace("{main}", "bench/hello_world/main.py"),
    "heavy": (
        "import time; t = time.perf_counter();"
        "import pandas, xgboost; from google.cloud import bigquery;"
        "print(time.perf_counter() - t)"
    ),
}


def wrk(url: str, connections: int, duration: int, script: Path | None) -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"errors under load:\n{out}")

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * UNITS[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps, out
    return {"rps": float(rps.group(1)), "p50": latency("50"), "p99": latency("99")}


def cold(kind: str) -> float:
    code = COLD[kind].format(root=str(ROOT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRCAST_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per function")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--locations", type=int, default=200)
    ap.add_argument("--cold-runs", type=int, default=7)
    ap.add_argument("--shards", type=int, default=1, help="publish the snapshot as N parts")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")

    tmp = Path(tempfile.mkdtemp(prefix="aircast-bench-"))
    home = tmp / "home"
    ids = tuple(f"loc-{i:04d}" for i in range(args.locations))
    store = LocalStore(home / "artifacts")
    for k in range(args.shards):  # each part holds the locations whose id hashes to it
        mine = tuple(i for i in ids if shard_of(i, args.shards) == k)
        part = make_snapshot(locations=mine, skipped=()).model_copy(
            update={"shard": k, "shards": args.shards}
        )
        store.put(snapshot_key(k, args.shards), part.model_dump_json().encode())
    script = tmp / "lookups.lua"
    paths = ", ".join(f'"/v1/forecasts/{i}?hours=24"' for i in ids)
    script.write_text(
        f"local paths = {{{paths}}}\n"
        "request = function() return wrk.format('GET', paths[math.random(#paths)]) end\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRCAST_")}
    env |= {"AIRCAST_BACKEND": "local", "AIRCAST_HOME": str(home), **GUNICORN}
    env["AIRCAST_PREDICT_SHARDS"] = str(args.shards)
    hello_src = ROOT / "bench" / "hello_world" / "main.py"
    served = [
        localstack.start_function("api", localstack.free_port(), env=env, log_dir=tmp),
        localstack.start_function(
            "hello", localstack.free_port(), env=env, log_dir=tmp, source=hello_src
        ),
    ]
    try:
        api, hello = (s.url for s in served)
        r = requests.get(f"{api}/v1/forecasts/{ids[0]}?hours=24", timeout=10)
        assert r.status_code == 200 and len(r.json()["points"]) == 24, r.text
        assert requests.get(hello, timeout=10).text == "Hello, World!"
        for url in (api, hello):  # warm up: caches, connections
            wrk(url, args.connections, 2, script)
        results: dict[str, list[dict[str, float]]] = {"api": [], "hello": []}
        for rnd in range(args.rounds):
            # the same request script for both, so the load generator does the same work
            order = [("api", api, script), ("hello", hello, script)]
            for name, url, s in order if rnd % 2 == 0 else order[::-1]:
                results[name].append(wrk(url, args.connections, args.duration, s))
                print(f"round {rnd + 1} {name:<5} {results[name][-1]}", flush=True)
    finally:
        localstack.stop(served)

    med = {
        name: {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
        for name, runs in results.items()
    }
    colds: dict[str, list[float]] = {"api": [], "heavy": [], "hello": []}
    for i in range(args.cold_runs):
        kinds = ["api", "heavy", "hello"]
        for kind in kinds if i % 2 == 0 else kinds[::-1]:
            colds[kind].append(cold(kind))
    c_api, c_heavy = statistics.median(colds["api"]), statistics.median(colds["heavy"])
    c_hello = statistics.median(colds["hello"])

    a, h = med["api"], med["hello"]
    print(
        f"\n{args.connections} connections, {args.rounds} x {args.duration:.0f} s per function"
        f" (medians over rounds), {args.locations} locations in {args.shards} part(s)\n"
    )
    print("| function | requests/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for name, label in (("api", "api `/v1/forecasts/<id>?hours=24`"), ("hello", "hello-world")):
        m = med[name]
        print(f"| {label} | {m['rps']:,.0f} | {m['p50']:.2f} | {m['p99']:.2f} |")
    print(
        f"| **ratio api / hello** | **{a['rps'] / h['rps']:.2f}x** | {a['p50'] / h['p50']:.2f}x"
        f" | **{a['p99'] / h['p99']:.2f}x** |"
    )
    print(
        f"\ncold import (median of {args.cold_runs}): api main.py {c_api * 1000:.0f} ms, "
        f"pandas+xgboost+bigquery {c_heavy * 1000:.0f} ms, ratio {c_api / c_heavy:.2f}"
    )
    print(f"(hello-world main.py, for reference: {c_hello * 1000:.0f} ms)")
    for kind, runs in colds.items():
        print(f"{kind} runs: {[round(x * 1000) for x in runs]} ms")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
