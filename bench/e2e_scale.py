"""Benchmark: the whole sharded system at N synthetic locations, every cloud path on the emulators.

    .venv/bin/python bench/e2e_scale.py --locations 10000 --shards 2 [--lookup-seconds 20]
        [--attempt-deadline 3600] [--memory api=2Gi]

Set-up (not timed): `bench/scale.py _setup N` trains a production model locally and gives N
bench locations 96 hours of observations; the model goes to gcp-storage-emulator and the
locations and observations to bqemulator (tests/emulators.py: REST and the Storage
Read/Write gRPC port). Then, as deployed: ingest, train, monitor and the api are each served
by functions-framework (gunicorn, as on Cloud Run) in a process of their own, and predict by
one such instance per shard (Cloud Run gives each concurrent request of a concurrency-1
function its own instance). The local scheduler's `fire` sends each job what Cloud
Scheduler would (the schedule's body, as_of pinned to the data):

1. ingest (synthetic source, the N locations): one run;
2. predict: the N shard jobs of `expand(SCHEDULES, N)` fired at the same moment, side by side;
3. monitor: one run;
4. the api: every location looked up once (so every snapshot part is read), then lookups of
   random locations from 8 client threads for --lookup-seconds.

Measured: wall time of each run, peak RSS of each function instance (VmHWM of its
gunicorn master and worker, summed: what Cloud Run's memory limit counts), BigQuery
requests per run by kind (bqemulator's own /metrics counters, REST routes and gRPC
methods, read before and after each phase), and the api's lookup rate; each instance's
peak against its memory in Terraform (terraform/main.tf, local.function_defaults, or
the `var.functions` override given with --memory). --attempt-deadline lets a run take
longer than its schedule's attempt deadline (the function's timeout): ten shards side by
side on two shared cores take longer than ten instances with a vCPU each.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import dataclasses
import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scale import AS_OF, TRAIN_ENV, bench_locations  # noqa: E402

PROJECT = "aircast-bench"
BUCKET = "aircast-bench"


def peak_mib(pid: int) -> float:
    """VmHWM of a process and its children (gunicorn's master and worker), MiB."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                pids += [int(c) for c in children]
        except OSError:
            continue
        total += int(re.search(r"VmHWM:\s+(\d+) kB", status)[1])  # type: ignore[index]
    return total / 1024


def emulator_counts(rest: str) -> collections.Counter[str]:
    """bqemulator's request counters: 'REST METHOD route' and 'gRPC Method'."""
    text = urllib.request.urlopen(f"{rest}/metrics", timeout=10).read().decode()
    out: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        if line.startswith("bqemulator_rest_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            out[f"REST {labels['method']} {labels['route']}"] += int(float(line.split()[-1]))
        elif line.startswith("bqemulator_grpc_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            out[f"gRPC {labels['method'].rsplit('/', 1)[-1]}"] += int(float(line.split()[-1]))
    return out


def kinds(delta: collections.Counter[str]) -> dict[str, int]:
    """Requests by what they are, from the emulator's route templates and gRPC methods."""
    out = {"queries": 0, "load jobs": 0, "uploads": 0, "result/job GETs": 0, "read (gRPC)": 0,
           "write (gRPC)": 0, "other": 0}  # fmt: skip
    for key, n in delta.items():
        if key.startswith("gRPC"):
            write = any(w in key for w in ("WriteStream", "AppendRows", "Finalize"))
            out["write (gRPC)" if write else "read (gRPC)"] += n
        elif key.startswith("REST POST") and key.endswith("/queries"):
            out["queries"] += n
        elif key.startswith("REST POST") and key.endswith("/jobs"):  # a load job's insert
            out["load jobs"] += n
        elif "/upload/" in key:  # its resumable upload
            out["uploads"] += n
        elif key.startswith("REST GET") and ("/queries/" in key or "/jobs/" in key):
            out["result/job GETs"] += n
        else:
            out["other"] += n
    return out


def terraform_memory() -> dict[str, float]:
    """Each function's memory in MiB as terraform/main.tf gives it by default."""
    from tests.terraform_hcl import load

    units = {"Mi": 1, "Gi": 1024}
    out: dict[str, float] = {}
    for name, f in load()["locals"]["function_defaults"].items():
        m = re.fullmatch(r"(\d+)(Mi|Gi)", f["memory"])
        assert m, f["memory"]
        out[name] = int(m[1]) * units[m[2]]
    return out


def run(
    n: int,
    shards: int,
    lookup_seconds: float,
    workdir: Path,
    skip_ingest: bool = False,
    attempt_deadline: int | None = None,
    memory_override: dict[str, float] | None = None,
) -> dict[str, Any]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from common.core.config import load_settings
    from common.core.schema import TABLES
    from common.core.timeutil import iso
    from common.runtime.services import get_services
    from common.scheduling.local import HttpInvoker, fire
    from common.scheduling.schedules import SCHEDULES, expand
    from common.scheduling.stack import free_port, start_function, stop
    from common.storage import open_store
    from common.warehouse.base import conform
    from common.warehouse.bigquery_warehouse import BigQueryWarehouse
    from common.warehouse.bigquery_write import ARROW_TYPES, load_parquet
    from tests.emulators import bigquery_emulator, storage_emulator

    local_home = workdir / "local"
    env = {**os.environ, "AIRCAST_HOME": str(local_home), "AIRCAST_BACKEND": "local", **TRAIN_ENV}
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "bench/scale.py"), "_setup", str(n)], env=env, check=True
    )
    print(f"set-up: local model and data ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRCAST_")})
    local = get_services()
    toml = workdir / "locations.toml"
    toml.write_text(
        "".join(
            f'[[location]]\nid = "{r.location_id}"\nname = "{r.name}"\nlatitude = {r.latitude}\n'
            f'longitude = {r.longitude}\nsource = "synthetic"\ntimezone = "UTC"\n\n'
            for r in bench_locations(n).itertuples()
        )
    )
    out: dict[str, Any] = {"locations": n, "shards": shards, "cpus": os.cpu_count()}
    served = []
    # bqemulator copies a table whole into a time-travel snapshot after every write and
    # keeps it 7 days (bqemulator/versioning/snapshots.py, SnapshotManager.record_change):
    # at 100,000 locations its twelve set-up loads of a growing observations table held
    # 17 GiB. Nothing here reads FOR SYSTEM_TIME AS OF: retention 0 lets its GC drop them.
    os.environ["BQEMU_TIME_TRAVEL_RETENTION_DAYS"] = "0"
    with (
        bigquery_emulator(PROJECT, workdir) as bq,
        storage_emulator(BUCKET, workdir) as gcs,
    ):
        settings = load_settings(
            backend="gcp", home=workdir / "gcp-home", project=PROJECT, bucket=BUCKET,
            bigquery_endpoint=bq.rest, bigquery_storage_endpoint=bq.grpc,
            storage_endpoint=gcs, source="synthetic", locations_file=toml,
        )  # fmt: skip
        warehouse = BigQueryWarehouse(settings)
        warehouse.ensure_schema()
        store = open_store(settings)
        for key in local.store.list("models/"):
            store.put(key, local.store.get(key))
        start = AS_OF - dt.timedelta(hours=96)
        warehouse.append(
            "locations",
            local.warehouse.query("SELECT * FROM current_locations").assign(
                updated_at=pd.Timestamp.now(tz="UTC")
            ),
        )
        # The 96 hours as one load job (one snapshot of the table, see above), written into
        # one Parquet file 8 hours at a time: bounded memory at 100,000.
        spec = TABLES["observations_raw"]
        schema = pa.schema(
            [pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required) for c in spec.columns]
        )
        path = workdir / "observations_raw.parquet"
        with pq.ParquetWriter(path, schema, compression="snappy") as writer:
            for hours in range(0, 96, 8):
                a, b = start + dt.timedelta(hours=hours), start + dt.timedelta(hours=hours + 8)
                obs = local.warehouse.query(
                    "SELECT * FROM observations_raw WHERE ts > @a AND ts <= @b", {"a": a, "b": b}
                )
                writer.write_table(
                    pa.Table.from_pandas(conform(spec, obs), schema=schema, preserve_index=False)
                )
                took = time.perf_counter() - t0
                print(f"set-up: observations to {iso(b)} written ({took:.0f} s)", file=sys.stderr)
        del obs
        ref = f"{PROJECT}.{settings.dataset}.observations_raw"
        load_parquet(warehouse.client, ref, spec.name, path.read_bytes(), "bench_observations")
        path.unlink()
        print(f"set-up: observations loaded ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        out["setup_s"] = round(time.perf_counter() - t0, 1)

        fn_env = {
            "AIRCAST_BACKEND": "gcp", "GOOGLE_CLOUD_PROJECT": PROJECT, "AIRCAST_BUCKET": BUCKET,
            "AIRCAST_DATASET": settings.dataset, "AIRCAST_BIGQUERY_ENDPOINT": bq.rest,
            "AIRCAST_BIGQUERY_STORAGE_ENDPOINT": bq.grpc, "STORAGE_EMULATOR_HOST": gcs,
            "AIRCAST_SOURCE": "synthetic", "AIRCAST_LOCATIONS_FILE": str(toml),
            "AIRCAST_PREDICT_SHARDS": str(shards), "AIRCAST_HOME": str(workdir / "fn-home"),
            "AIRCAST_LOG_LEVEL": "WARNING", "THREADS": "8",
        }  # fmt: skip
        logs = workdir / "logs"
        try:
            instances = {
                name: start_function(name, free_port(), env=fn_env, log_dir=logs)
                for name in ("ingest", "train", "monitor", "api")
            }
            for k in range(shards):
                instances[f"predict-{k}"] = start_function(
                    "predict", free_port(), env=fn_env, log_dir=logs / f"predict-{k}"
                )
            served = list(instances.values())
            schedules = [
                dataclasses.replace(s, attempt_deadline_s=attempt_deadline)
                if attempt_deadline
                else s
                for s in expand(SCHEDULES, shards)
            ]
            by_name = {s.name: s for s in schedules}
            phases: dict[str, dict[str, Any]] = {}

            def phase(name: str, jobs: list[tuple[str, Any, dict[str, Any]]]) -> None:
                before = emulator_counts(bq.rest)
                t = time.perf_counter()
                with cf.ThreadPoolExecutor(len(jobs)) as pool:
                    attempts = list(
                        pool.map(
                            lambda j: fire(HttpInvoker({j[1].function: j[0]}), j[1], j[2]), jobs
                        )
                    )
                wall = time.perf_counter() - t
                delta = emulator_counts(bq.rest) - before
                bad = [(a.schedule, a.status_code, a.answer) for a in attempts if not a.ok]
                phases[name] = {
                    "failed": bad,  # reported, not fatal: the next phases still run
                    "runs": len(jobs),
                    "wall_s": round(wall, 2),
                    "run_s": [round(a.seconds, 2) for a in attempts],
                    "requests_per_run": {
                        k: round(v / len(jobs), 1) for k, v in kinds(delta).items()
                    },
                    "answers": [a.answer.get("counts") for a in attempts],
                }
                peaks = {k: round(peak_mib(s.process.pid)) for k, s in instances.items()}
                print(json.dumps({name: phases[name], "peak_mib": peaks}), file=sys.stderr)

            body = {"as_of": iso(AS_OF)}
            ingest_as_of = {"as_of": iso(AS_OF + dt.timedelta(hours=1))}
            if not skip_ingest:
                phase("ingest", [(instances["ingest"].url, by_name["aircast-ingest-hourly"],
                                  ingest_as_of)])  # fmt: skip
            sharded = [s for s in schedules if s.function == "predict"]
            phase(
                "predict",
                [
                    (instances[f"predict-{s.body['shard']}"].url, s, {**s.body, **body})
                    for s in sharded
                ],
            )
            phase("monitor", [(instances["monitor"].url, by_name["aircast-monitor-hourly"],
                               body)])  # fmt: skip
            out["lookups"] = lookups(instances["api"].url, n, lookup_seconds)
            out["phases"] = phases
            memory = {**terraform_memory(), **(memory_override or {})}
            out["instances"] = {
                name: {
                    "peak_mib": round(peak_mib(s.process.pid)),
                    "terraform_mib": memory[name.split("-")[0]],
                }
                for name, s in instances.items()
            }
        finally:
            stop(served)
    return out


def lookups(api: str, n: int, seconds: float, prefix: str = "bench") -> dict[str, Any]:
    """Every location once (every part read), then random lookups from 8 threads."""
    import requests

    ids = [f"{prefix}-{i:06d}" for i in range(n)]
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
    session.mount("http://", adapter)
    statuses: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    def get(i: str) -> None:
        status = session.get(f"{api}/v1/forecasts/{i}", timeout=60).status_code
        with lock:
            statuses[status] += 1

    t = time.perf_counter()
    with cf.ThreadPoolExecutor(8) as pool:
        list(pool.map(get, ids))
    first = time.perf_counter() - t
    all_once = dict(statuses)
    statuses.clear()
    stop_at = time.perf_counter() + seconds
    rng = random.Random(n)

    def loop() -> None:
        while time.perf_counter() < stop_at:
            get(rng.choice(ids))

    t = time.perf_counter()
    with cf.ThreadPoolExecutor(8) as pool:
        for _ in range(8):
            pool.submit(loop)
    spent = time.perf_counter() - t
    return {
        "every_location_once": all_once,
        "every_location_once_s": round(first, 2),
        "random": dict(statuses),
        "random_per_s": round(sum(statuses.values()) / spent, 1),
    }


def table(r: dict[str, Any]) -> str:
    lines = [
        "| instance | runs | wall s | peak RSS MiB | Terraform MiB | margin |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    runs = {"ingest": "ingest", "monitor": "monitor", "api": None, "train": None}
    for name, inst in r["instances"].items():
        phase = "predict" if name.startswith("predict") else runs.get(name)
        if phase and phase in r["phases"]:
            p = r["phases"][phase]
            k = int(name.split("-")[1]) if name.startswith("predict") else 0
            wall = f"{p['run_s'][k]:.1f}"
        else:
            wall = "-"
        margin = 1 - inst["peak_mib"] / inst["terraform_mib"]
        lines.append(
            f"| {name} | {1 if wall != '-' else 0} | {wall} | {inst['peak_mib']} "
            f"| {inst['terraform_mib']} | {margin:.0%} |"
        )
    lines += ["", "| run | BigQuery requests per run by kind |", "|---|---|"]
    for name, p in r["phases"].items():
        kinds_ = ", ".join(f"{k} {v:g}" for k, v in p["requests_per_run"].items() if v)
        lines.append(f"| {name} (runs side by side: {p['runs']}; {p['wall_s']} s) | {kinds_} |")
    lk = r["lookups"]
    lines.append("")
    lines.append(
        f"api: every location once {lk['every_location_once']} in "
        f"{lk['every_location_once_s']} s; random lookups {lk['random_per_s']}/s {lk['random']}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--lookup-seconds", type=float, default=20.0)
    parser.add_argument("--skip-ingest", action="store_true", help="predict, monitor, api only")
    parser.add_argument(
        "--attempt-deadline", type=int, help="seconds each fired job may take (default: its own)"
    )
    parser.add_argument(
        "--memory", action="append", default=[], metavar="FUNCTION=SIZE",
        help="a function's memory as var.functions overrides it (e.g. api=2Gi)",
    )  # fmt: skip
    a = parser.parse_args()
    override: dict[str, float] = {}
    for item in a.memory:
        name, _, size = item.partition("=")
        m = re.fullmatch(r"(\d+)(Mi|Gi)", size)
        if not m:
            parser.error(f"--memory {item}: expected FUNCTION=<n>Mi or <n>Gi")
        override[name] = int(m[1]) * {"Mi": 1, "Gi": 1024}[m[2]]
    with tempfile.TemporaryDirectory(prefix="aircast-e2e-") as tmp:
        result = run(
            a.locations, a.shards, a.lookup_seconds, Path(tmp), a.skip_ingest,
            a.attempt_deadline, override,
        )  # fmt: skip
    print(json.dumps(result), file=sys.stderr)
    print(table(result))


if __name__ == "__main__":
    main()
