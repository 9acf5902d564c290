"""`aircast demo` (what `make demo` runs) on a fresh home, non-interactively as CI runs it:
it fills the warehouse, trains, forecasts, serves the stack, checks the api answers, prints
what to open next, and stops everything it started."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from common.core.config import load_settings
from common.forecasting.snapshot import SNAPSHOT_KEY, Snapshot
from common.scheduling.stack import port_open
from common.storage import open_store
from tests.train.test_train import TRAIN_ENV

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_stack_and_stops_by_itself(tmp_path: Path):
    home = tmp_path / "home"
    env = {**os.environ, **TRAIN_ENV, "AIRCAST_HOME": str(home), "DEMO_SERVE": "0"}
    env.pop("AIRCAST_BACKEND", None)
    aircast = Path(sys.executable).with_name("aircast")
    cmd = [str(aircast), "demo", "--port", "0", "--days", "35", "--replay-hours", "4"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for text in ("[4/4 ready]", "Open the dashboard:", "curl -s", "aircast sql", "stopping"):
        assert text in out, out
    api = re.search(r"Open the dashboard:\s+http://127\.0\.0\.1:(\d+)/", out)
    assert api and not port_open("127.0.0.1", int(api.group(1)))  # the stack is stopped
    assert not (home / "endpoints.json").exists()

    settings = load_settings(backend="local", home=home)
    snapshot = Snapshot.model_validate_json(open_store(settings).get(SNAPSHOT_KEY))
    assert snapshot.forecasts and all(len(f.yhat) == 24 for f in snapshot.forecasts.values())
    sql = subprocess.run(
        [str(aircast), "sql", "--json", "SELECT COUNT(*) AS n FROM forecast_accuracy"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(sql.stdout)[0]["n"] > 0
