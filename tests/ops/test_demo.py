"""`aircast demo` (what `make demo` runs) on a fresh home, non-interactively as CI runs it
(`CI=true DEMO_SERVE=0`): it fills the warehouse, trains, forecasts, serves the stack, checks
the api answers, prints what to open next, and stops everything it started. What a newcomer
sees must argue for the product: numbered steps and human lines only (the JSON event log is
in the home), a model that beats persistence (`aircast status` has no accuracy warning),
forecasts checked at horizons 1, 12 and 24, and several pollutants served."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.core.config import load_settings
from common.forecasting.snapshot import Snapshot, snapshot_key
from common.ops.demo import DEMO_SETTINGS
from common.scheduling.stack import port_open
from common.storage import open_store

ROOT = Path(__file__).resolve().parents[2]
AIRCAST = Path(sys.executable).with_name("aircast")


@pytest.mark.timeout(1800)  # a couple of minutes alone; far longer on a loaded machine
def test_demo_shows_a_served_stack_that_beats_persistence_and_stops_by_itself(tmp_path: Path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRCAST_")}
    env.update({"AIRCAST_HOME": str(home), "CI": "true", "DEMO_SERVE": "0"})
    # The demo as `make demo` runs it (28 days: enough to train; 26 replayed hours: checked
    # forecasts at horizon 24).
    cmd = [str(AIRCAST), "demo", "--port", "0", "--days", "28", "--replay-hours", "26"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout + done.stderr
    for text in ("[1/4 warehouse]", "[4/4 ready]", "Open the dashboard:", "curl -s", "stopping"):
        assert text in out, out
    json_lines = [line for line in out.splitlines() if line.lstrip().startswith("{")]
    assert not json_lines, json_lines[:3]  # the event log went to the home instead
    assert '"severity"' in (home / "logs" / "demo.log").read_text(encoding="utf-8")
    api = re.search(r"Open the dashboard:\s+http://127\.0\.0\.1:(\d+)/", out)
    assert api and not port_open("127.0.0.1", int(api.group(1)))  # the stack is stopped
    assert not (home / "endpoints.json").exists()

    demo_env = {**env, **DEMO_SETTINGS}  # what the demo ran with
    status = json.loads(run(demo_env, "status", "--json"))
    (accuracy,) = [c for c in status["conditions"] if c["name"] == "accuracy"]
    assert accuracy["state"] == "ok", accuracy["detail"]
    assert accuracy["value"] is not None and accuracy["value"] < 1.0, accuracy
    checked = json.loads(
        run(
            demo_env,
            "sql",
            "--json",
            "SELECT target, horizon_h, COUNT(*) AS n FROM forecast_accuracy "
            "WHERE horizon_h IN (1, 12, 24) GROUP BY target, horizon_h",
        )
    )
    targets = DEMO_SETTINGS["AIRCAST_TARGETS"].split(",")
    assert {(r["target"], r["horizon_h"]) for r in checked if r["n"] > 0} == {
        (t, h) for t in targets for h in (1, 12, 24)
    }

    store = open_store(load_settings(backend="local", home=home))
    for target in targets:  # every pollutant is served, 24 hours ahead at every place
        key = snapshot_key(target=target, default_target=targets[0])
        snapshot = Snapshot.model_validate_json(store.get(key))
        assert len(snapshot.forecasts) == 6, target
        assert all(len(f.yhat) == 24 for f in snapshot.forecasts.values()), target


def run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(AIRCAST), *args], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert not done.stderr.lstrip().startswith("{"), done.stderr
    return done.stdout
