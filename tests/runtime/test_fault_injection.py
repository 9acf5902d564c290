"""Fault injection: a job run in a subprocess kills itself (SIGKILL) at a named point
(common.core.faults: before its writes, between them, during the snapshot compare-and-swap,
after them), then the same run is re-run. After every kill and every re-run: no view holds
a duplicate, the production pointer and the serving snapshot are valid JSON naming a
complete model version, and the killed run shows as `lost` in `run_status` once past its
deadline (AIRCAST_RUN_TIMEOUT_SECONDS=1 here).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.core.faults import KILL_AT
from common.forecasting.snapshot import SNAPSHOT_KEY, Snapshot
from common.ingest.job import IngestRequest, run_ingest
from common.monitoring import conditions as health
from common.predict.job import PredictRequest, run_predict
from common.runtime import services
from common.runtime.services import get_services
from common.storage import ArtifactStore
from common.storage.base import ObjectMissing
from common.train.job import TrainRequest, run_train
from tests.predict.conftest import trained  # noqa: F401 (the predict tests' fixture)
from tests.train.test_train import AS_OF, TRAIN_ENV
from tests.views import duplicates

ROOT = Path(__file__).resolve().parents[2]
POINTER = "models/aircast/production.json"
TIMEOUT = 1  # seconds: a run unfinished this long after its start is lost
# (function, kill point, as_of): predict's as_of rise so every run publishes its snapshot;
# ingest's start is the same code as predict's (track_run), so it is killed after it only.
CASES = [
    ("predict", "run:started", AS_OF - dt.timedelta(hours=8)),
    ("predict", "predict:forecasts-written", AS_OF - dt.timedelta(hours=7)),
    ("predict", "store:cas", AS_OF - dt.timedelta(hours=6)),
    ("predict", "run:finishing", AS_OF - dt.timedelta(hours=5)),
    ("ingest", "ingest:observations-written", AS_OF + dt.timedelta(hours=2)),
    ("ingest", "run:finishing", AS_OF + dt.timedelta(hours=3)),
]
# train, on a new deployment (the first version's gate is waived, so it is promoted): killed
# inside the pointer's CAS, then, with a version in production, after a new version's files
# are saved and before the pointer CAS.
TRAIN_CASES = [
    ("train", "store:cas", AS_OF - dt.timedelta(days=1)),
    ("train", "train:version-written", AS_OF),
]
TRAIN_WINDOW_DAYS = 28  # about the smallest window train accepts (3 holdout days + 23)
SCRIPT = """
import sys
from common.runtime.services import get_services
from common.{fn}.job import {model}, run_{fn}
run_{fn}({model}.model_validate_json(sys.argv[1]), get_services())
"""
REQUESTS = {"predict": PredictRequest, "ingest": IngestRequest, "train": TrainRequest}
JOBS = {"predict": run_predict, "ingest": run_ingest, "train": run_train}


def _body(function: str, as_of: dt.datetime) -> dict:
    extra = {
        "ingest": {"source": "synthetic"},
        "train": {"window_days": TRAIN_WINDOW_DAYS},
    }.get(function, {})
    return {"as_of": as_of.isoformat(), **extra}


def _killed_run(home: Path, function: str, point: str, as_of: dt.datetime) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRCAST_")}
    env |= TRAIN_ENV | {
        "AIRCAST_BACKEND": "local",
        "AIRCAST_HOME": str(home),
        "AIRCAST_RUN_TIMEOUT_SECONDS": str(TIMEOUT),
        KILL_AT: point,
    }
    model = REQUESTS[function].__name__
    code = SCRIPT.format(fn=function, model=model)
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(_body(function, as_of))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]


def _complete(store: ArtifactStore, version: str) -> bool:
    keys = set(store.list(f"models/aircast/{version}/"))
    if f"models/aircast/{version}/metadata.json" not in keys:
        return False
    json.loads(store.get(f"models/aircast/{version}/metadata.json"))
    return f"models/aircast/{version}/model.ubj" in keys or any(k.endswith(".ubj") for k in keys)


def _check_invariants() -> None:
    svc = get_services()
    assert duplicates(svc.warehouse) == dict.fromkeys(duplicates(svc.warehouse), 0)
    pointer = json.loads(svc.store.get(POINTER))
    assert _complete(svc.store, pointer["version"]), pointer
    try:
        snapshot = Snapshot.model_validate_json(svc.store.get(SNAPSHOT_KEY))
    except ObjectMissing:
        return  # no predict has published yet
    assert _complete(svc.store, snapshot.model_version), snapshot.model_version


def test_killed_runs_leave_valid_state_and_show_as_lost(
    trained: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    monkeypatch.setenv("AIRCAST_HOME", str(home))
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    for key, value in TRAIN_ENV.items():
        monkeypatch.setenv(key, value)
    services.reset()

    for function, point, as_of in CASES:
        _killed_run(home, function, point, as_of)
        _check_invariants()
        answer = JOBS[function](
            REQUESTS[function].model_validate(_body(function, as_of)), get_services()
        )
        assert answer["status"] in {"success", "partial"}, (point, answer)
        _check_invariants()

    time.sleep(TIMEOUT + 0.5)  # every killed run is now past its deadline
    status = get_services().warehouse.query(
        "SELECT function, as_of, status FROM run_status WHERE status NOT IN ('success', 'partial')"
    )
    assert sorted(status["status"]) == ["lost"] * len(CASES)
    killed = sorted((f, a) for f, _, a in CASES)
    found = sorted(zip(status["function"], status["as_of"].dt.to_pydatetime(), strict=True))
    assert found == killed
    snapshot = Snapshot.model_validate_json(get_services().store.get(SNAPSHOT_KEY))
    assert snapshot.issued_at == CASES[3][2]  # the last predict's re-run published
    # What `aircast status`, /health and /v1/metrics show of them (the runs condition).
    last = max(a for _, _, a in CASES)
    shown = health.runs(get_services(), last).to_json()
    lost = {fn: f["lost"] for fn, f in shown["functions"].items() if f["lost"]}
    assert lost == {f: sum(1 for g, _, _ in CASES if g == f) for f, _, _ in CASES}
    assert "lost" in shown["detail"]


def _lost(cases: list[tuple[str, str, dt.datetime]]) -> None:
    time.sleep(TIMEOUT + 0.5)  # every killed run is now past its deadline
    status = get_services().warehouse.query(
        "SELECT function, as_of, status FROM run_status "
        "WHERE status NOT IN ('success', 'partial', 'rejected')"
    )
    assert sorted(status["status"]) == ["lost"] * len(cases)
    found = sorted(zip(status["function"], status["as_of"].dt.to_pydatetime(), strict=True))
    assert found == sorted((f, a) for f, _, a in cases)


def test_killed_train_leaves_production_on_a_complete_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("AIRCAST_HOME", str(home))
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    for key, value in TRAIN_ENV.items():
        monkeypatch.setenv(key, value)
    services.reset()
    start = AS_OF - dt.timedelta(days=TRAIN_WINDOW_DAYS + 2)
    run_ingest(IngestRequest(start=start, end=AS_OF, source="synthetic"), get_services())

    promoted = []
    for function, point, as_of in TRAIN_CASES:
        _killed_run(home, function, point, as_of)
        services.reset()  # the pointer file changed under this process
        store = get_services().store
        try:
            pointer = json.loads(store.get(POINTER))
        except ObjectMissing:
            pointer = None
        # Never a half-written pointer: absent (nothing promoted yet) or a complete version.
        assert pointer is None or _complete(store, pointer["version"]), (point, pointer)
        answer = run_train(TrainRequest.model_validate(_body(function, as_of)), get_services())
        assert answer["status"] in {"success", "rejected"}, (point, answer)
        if answer["status"] == "success" and answer["production"] == answer["version"]:
            promoted.append(answer["version"])
        _check_invariants()
    # The first (killed in its CAS) reached production; the pointer names a promoted one.
    assert promoted and promoted[0].startswith("20240229T0000Z"), promoted
    assert json.loads(get_services().store.get(POINTER))["version"] in promoted
    _lost(TRAIN_CASES)
