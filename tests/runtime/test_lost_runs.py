"""A run killed mid-way (kill -9: what an out-of-memory kill or a Cloud Run timeout does)
stays visible: its start row shows `running` in run_status, then `lost` once past its
deadline (started_at + the function's timeout, here shortened by AIRCAST_RUN_TIMEOUT_SECONDS)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from common.core.config import Settings, load_settings
from common.runtime.runs import track_run
from common.warehouse import open_warehouse

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 6


def _status(settings: Settings) -> pd.DataFrame:
    return open_warehouse(settings).query("SELECT run_id, status, deadline_at FROM run_status")


def test_a_killed_ingest_shows_running_then_lost(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRCAST_")}
    env |= {"AIRCAST_HOME": str(tmp_path), "AIRCAST_BACKEND": "local",
            "AIRCAST_RUN_TIMEOUT_SECONDS": str(TIMEOUT_S)}  # fmt: skip
    settings = load_settings(backend="local", home=tmp_path)
    open_warehouse(settings).ensure_schema()
    aircast = Path(sys.executable).parent / "aircast"
    cmd = [str(aircast), "ingest", "--source", "synthetic",
           "--start", "2025-01-01T00:00Z", "--end", "2026-01-31T00:00Z"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _status(settings).empty:  # wait for the start row
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    (row,) = _status(settings).to_dict("records")
    assert row["status"] == "running", row  # killed before its outcome row
    wait = (row["deadline_at"] - pd.Timestamp.now(tz="UTC")).total_seconds()
    time.sleep(max(0.0, wait) + 0.5)
    assert _status(settings).to_dict("records")[0]["status"] == "lost"
    raw = open_warehouse(settings).query("SELECT status FROM runs")
    assert list(raw["status"]) == ["running"]  # append-only: nothing was rewritten


def test_run_status_keeps_one_row_per_run_on_every_backend(settings: Settings) -> None:
    wh = open_warehouse(settings)
    wh.ensure_schema()
    as_of = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
    with track_run(wh, "ingest", as_of) as run:
        run.counts["written"] = 3
    raw = wh.query("SELECT status FROM runs WHERE run_id = @r", {"r": run.run_id})
    assert sorted(raw["status"]) == ["running", "success"]
    view = wh.query("SELECT status, counts FROM run_status WHERE run_id = @r", {"r": run.run_id})
    assert view.to_dict("records") == [{"status": "success", "counts": '{"written": 3}'}]
    # A start row whose deadline passed, with no outcome row: lost.
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    wh.append("runs", pd.DataFrame([{
        "run_id": "predict-x", "function": "predict", "as_of": as_of, "status": "running",
        "started_at": past, "deadline_at": past + dt.timedelta(minutes=15)}]))  # fmt: skip
    lost = wh.query("SELECT status FROM run_status WHERE run_id = 'predict-x'")
    assert list(lost["status"]) == ["lost"]
