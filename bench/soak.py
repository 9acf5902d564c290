"""Soak: the local stack (DuckDB, the synthetic source) driven over simulated days of the real
schedules, with random runs killed (SIGKILL via AIRCAST_KILL_AT at a random point) and
each killed run re-run as Cloud Scheduler's retry would. At the end it checks and prints
the invariants and exits 1 if one fails:

- no view holds a duplicate key (common.core.view_keys);
- the production pointer and the serving snapshot are valid JSON naming complete versions;
- every killed run shows as `lost` in run_status (past AIRCAST_RUN_TIMEOUT_SECONDS);
- latest-per-issue forecasts exist for every scheduled predict hour.

Runs that are not killed are called in-process (as the test suite does); a killed run is a
subprocess, since the kill takes its process with it.

    .venv/bin/python -m bench.soak --days 2 --kill-rate 0.15 --seed 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from common.core.faults import KILL_AT
from common.core.timeutil import iso
from common.forecasting.snapshot import SNAPSHOT_KEY, Snapshot
from common.ingest.job import IngestRequest, run_ingest
from common.monitoring.job import MonitorRequest, run_monitor
from common.predict.job import PredictRequest, run_predict
from common.runtime import services
from common.runtime.services import Services, get_services
from common.scheduling.local import replay_plan
from common.scheduling.schedules import SCHEDULES, Schedule
from common.storage.base import ObjectMissing
from common.train.job import TrainRequest, run_train
from common.warehouse.view_keys import duplicates

ROOT = Path(__file__).resolve().parents[1]
POINTS = {
    "ingest": ["run:started", "ingest:observations-written", "run:finishing"],
    "predict": ["run:started", "predict:forecasts-written", "store:cas", "run:finishing"],
    "train": ["run:started", "train:version-written", "store:cas", "run:finishing"],
    "monitor": ["run:started", "run:finishing"],
}
JOBS: dict[str, tuple[type[BaseModel], Callable[[Any, Services], dict[str, Any]]]] = {
    "ingest": (IngestRequest, run_ingest),
    "predict": (PredictRequest, run_predict),
    "train": (TrainRequest, run_train),
    "monitor": (MonitorRequest, run_monitor),
}
SCRIPT = """
import sys
from common.runtime.services import get_services
from {module} import {model}, run_{fn}
run_{fn}({model}.model_validate_json(sys.argv[1]), get_services())
"""
ENV = {
    "AIRCAST_BACKEND": "local",
    "AIRCAST_LOG_LEVEL": "WARNING",  # the run logs would bury the result
    "AIRCAST_RUN_TIMEOUT_SECONDS": "2",
    "AIRCAST_TRAIN_MAX_ROWS": "6000",
    "AIRCAST_TRAIN_BACKTEST_FOLDS": "1",
    "AIRCAST_TRAIN_HOLDOUT_DAYS": "3",
    "AIRCAST_TRAIN_THREADS": "1",
    "AIRCAST_TRAIN_WINDOW_DAYS": "30",
}


def body_of(schedule: Schedule, as_of: dt.datetime) -> dict[str, Any]:
    extra = {"source": "synthetic"} if schedule.function == "ingest" else {}
    return {**schedule.body, **extra, "as_of": iso(as_of)}


def in_process(function: str, body: dict[str, Any]) -> dict[str, Any]:
    model, run = JOBS[function]
    return run(model.model_validate(body), get_services())


def killed(function: str, body: dict[str, Any], point: str) -> bool:
    """Run in a subprocess that kills itself at `point`; False if it never got there."""
    module = JOBS[function][1].__module__  # the monitor's job lives in common.monitoring
    code = SCRIPT.format(fn=function, model=JOBS[function][0].__name__, module=module)
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(body)],
        cwd=ROOT,
        env=os.environ | {KILL_AT: point},
        capture_output=True,
        timeout=600,
    )
    if proc.returncode == -signal.SIGKILL:
        return True
    if proc.returncode != 0:
        raise SystemExit(f"{function} {body} failed: {proc.stderr.decode()[-2000:]}")
    return False


def complete(version: str) -> bool:
    store = get_services().store
    keys = set(store.list(f"models/aircast/{version}/"))
    if f"models/aircast/{version}/metadata.json" not in keys:
        return False
    json.loads(store.get(f"models/aircast/{version}/metadata.json"))
    return any(k.endswith(".ubj") for k in keys)


def invariants(killed_runs: list[tuple[str, dt.datetime]], predicts: list[dt.datetime]) -> dict:
    svc = get_services()
    out: dict[str, Any] = {}
    dups = duplicates(svc.warehouse)
    out["duplicates"] = (sum(dups.values()) == 0, dups)
    pointer = json.loads(svc.store.get("models/aircast/production.json"))
    out["pointer"] = (complete(pointer["version"]), pointer["version"])
    try:
        snap = Snapshot.model_validate_json(svc.store.get(SNAPSHOT_KEY))
        out["snapshot"] = (complete(snap.model_version), iso(snap.issued_at))
    except ObjectMissing:
        out["snapshot"] = (False, "missing")
    status = svc.warehouse.query("SELECT function, as_of, status FROM run_status")
    rows = Counter(
        (f, a, s)
        for f, a, s in zip(
            status["function"], status["as_of"].dt.to_pydatetime(), status["status"], strict=True
        )
    )
    lost = sorted((f, a) for (f, a, s) in rows if s == "lost")
    out["killed_lost"] = (
        sorted(killed_runs) == lost,
        f"{len(killed_runs)} killed, {len(lost)} lost",
    )
    issued = set(
        svc.warehouse.query("SELECT DISTINCT issued_at FROM forecasts")["issued_at"]
        .dt.to_pydatetime()
        .tolist()
    )
    missing = [iso(t) for t in predicts if t not in issued]
    out["forecasts"] = (not missing, f"{len(predicts) - len(missing)}/{len(predicts)} hours")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--kill-rate", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", default="2024-03-01T00:00:00+00:00")
    ap.add_argument("--warmup-days", type=int, default=35)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    home = Path(tempfile.mkdtemp(prefix="aircast-soak-"))
    os.environ.update(ENV | {"AIRCAST_HOME": str(home)})
    services.reset()
    start = dt.datetime.fromisoformat(args.start)
    end = start + dt.timedelta(days=args.days)
    began = time.monotonic()

    # Warm-up: history and a first model, as a deployment that has been running has.
    run_ingest(
        IngestRequest(
            start=start - dt.timedelta(days=args.warmup_days),
            end=start,
            as_of=start,
            source="synthetic",
        ),
        get_services(),
    )
    run_train(TrainRequest(as_of=start), get_services())
    warm = time.monotonic() - began

    plan = replay_plan(start, end, SCHEDULES)
    killed_runs: list[tuple[str, dt.datetime]] = []
    kills: Counter[str] = Counter()
    unreached: Counter[str] = Counter()
    predicts: list[dt.datetime] = []
    for fire_time, schedule in plan:
        as_of = Schedule.as_of(fire_time)
        body = body_of(schedule, as_of)
        if schedule.function == "predict":
            predicts.append(as_of)
        if rng.random() < args.kill_rate:
            point = rng.choice(POINTS[schedule.function])
            if killed(schedule.function, body, point):
                killed_runs.append((schedule.function, as_of))
                kills[f"{schedule.function} {point}"] += 1
            else:
                unreached[f"{schedule.function} {point}"] += 1
                continue  # it ran to its end: no retry
        answer = in_process(schedule.function, body)  # the first run, or the retry
        if answer.get("status") not in {"success", "partial", "rejected"}:
            print(f"{schedule.function} {iso(as_of)}: {answer}", file=sys.stderr)
    time.sleep(int(ENV["AIRCAST_RUN_TIMEOUT_SECONDS"]) + 0.5)
    result = invariants(killed_runs, predicts)
    seconds = time.monotonic() - began
    print(
        f"soak: {args.days} simulated days from {iso(start)}, seed {args.seed}, "
        f"kill rate {args.kill_rate}: {len(plan)} scheduled runs, {len(killed_runs)} killed "
        f"and re-run; warm-up {warm:.0f} s, total {seconds:.0f} s; home {home}"
    )
    for name, n in sorted(kills.items()):
        print(f"  killed at {name}: {n}")
    for name, n in sorted(unreached.items()):
        print(f"  kill point not reached (run finished, no retry): {name}: {n}")
    failed = False
    for name, (ok, detail) in result.items():
        failed |= not ok
        print(f"  {'PASS' if ok else 'FAIL'} {name}: {detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
