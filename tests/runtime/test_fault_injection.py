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
from common.predict.job import PredictRequest, run_predict
from common.runtime import services
from common.runtime.services import get_services
from common.storage import ArtifactStore
from common.storage.base import NotFound
from tests.predict.test_predict import trained  # noqa: F401 (the module's fixture)
from tests.train.test_train import AS_OF, TRAIN_ENV
from tests.views import duplicates

ROOT = Path(__file__).resolve().parents[2]
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
SCRIPT = """
import sys
from common.runtime.services import get_services
from common.{fn}.job import {model}, run_{fn}
run_{fn}({model}.model_validate_json(sys.argv[1]), get_services())
"""
REQUESTS = {"predict": PredictRequest, "ingest": IngestRequest}


def _body(function: str, as_of: dt.datetime) -> dict:
    extra = {"source": "synthetic"} if function == "ingest" else {}
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
    pointer = json.loads(svc.store.get("models/aircast/production.json"))
    assert _complete(svc.store, pointer["version"]), pointer
    try:
        snapshot = Snapshot.model_validate_json(svc.store.get(SNAPSHOT_KEY))
    except NotFound:
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
        rerun = {"predict": run_predict, "ingest": run_ingest}[function]
        answer = rerun(REQUESTS[function].model_validate(_body(function, as_of)), get_services())
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
