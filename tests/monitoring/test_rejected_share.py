"""The rejected share from the ingest runs' rows: what each run wrote is the `written` count
its outcome row keeps, and observations_raw is counted by run_id only for the runs whose
row cannot say (lost, or failed and recorded before the count was kept). The reported
value and text are checked on every backend against a hand count, with runs of every
kind: ones that rejected rows, a failed one, a lost one, one still running, a backfill of
past forecasts, a row written before the count was kept, a run outside the window.

The ingest job's side (the count kept true when a run fails after its observations
landed) is checked on the real job in the last test."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pandas as pd
import pytest

from common.core.config import Settings
from common.ingest import job as ingest_job
from common.ingest.job import IngestRequest, run_ingest
from common.monitoring import conditions, signals
from common.runtime import services
from common.runtime.services import Services, get_services
from common.warehouse import Warehouse, open_warehouse

T = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
OLD = T - dt.timedelta(days=300)  # hours a backfill wrote: no window on ts holds them


def _run(
    run_id: str,
    as_of: dt.datetime,
    status: str,
    source: str | None = "synthetic",
    counts: dict | None = None,
    forecasts: bool = False,
    deadline: dt.datetime | None = None,
) -> dict:
    params = {} if source is None else {"source": source, "forecasts": forecasts}
    return {
        "run_id": run_id,
        "function": "ingest",
        "as_of": as_of,
        "status": status,
        "started_at": as_of + 0.01 * H,
        "finished_at": None if status == "running" else as_of + 0.2 * H,
        "deadline_at": deadline or as_of + H,
        "counts": None if counts is None else json.dumps(counts),
        "params": json.dumps(params),
    }


def _observations(run_id: str, n: int, source: str = "synthetic") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "location_id": [f"{run_id}-{k}" for k in range(n)],
            "ts": OLD,
            "pm2_5": 10.0,
            "source": source,
            "run_id": run_id,
            "ingested_at": T,
        }
    )


def _rejections(run_id: str, reason: str, n: int, at: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {"run_id": run_id, "source": "synthetic", "reason": [reason] * n, "rejected_at": at}
    )


def _load(settings: Settings) -> Warehouse:
    wh = open_warehouse(settings)
    wh.ensure_schema()
    soon = dt.datetime.now(dt.UTC) + H  # a run whose deadline is ahead: still running
    wh.append(
        "runs",
        pd.DataFrame(
            [
                # ended, rejected rows: its row says it wrote 30
                _run("ok", T - 2 * H, "running"),
                _run("ok", T - 2 * H, "success", counts={"written": 30, "rejected": 3}),
                # failed after its observations landed: the row says so
                _run("failed", T - 3 * H, "running"),
                _run("failed", T - 3 * H, "failed", counts={"written": 10}),
                # killed after landing: only its start row, past its deadline (lost)
                _run("lost", T - 4 * H, "running"),
                # failed, recorded before the count was kept (counts {}, no params)
                _run("old-failed", T - 5 * H, "failed", source=None, counts={}),
                # a backfill of past forecasts: no observations, one rejection
                _run("pastfc", T - 6 * H, "success", counts={"rejected": 1}, forecasts=True),
                # another source, nothing rejected
                _run("csv-ok", T - 7 * H, "success", source="csv", counts={"written": 40}),
                # still running: counted when it ends
                _run("busy", T - H, "running", deadline=soon),
                # outside the window (as_of a day and more before T)
                _run("gone", T - 30 * H, "success", counts={"written": 5, "rejected": 5}),
            ]
        ),
    )
    wh.append(
        "observations_raw",
        pd.concat(
            [
                _observations("ok", 30),
                _observations("failed", 10),
                _observations("lost", 5),
                _observations("old-failed", 4),
                _observations("csv-ok", 40, source="csv"),
                _observations("busy", 7),
                _observations("gone", 5),
            ],
            ignore_index=True,
        ).assign(temperature_2m=1.0),
    )
    wh.append(
        "rejected_rows",
        pd.concat(
            [
                _rejections("ok", "pm2_5 out of range", 3, T - 2 * H + 0.1 * H),
                _rejections("failed", "ts not parseable", 2, T - 3 * H + 0.1 * H),
                _rejections("lost", "pm2_5 out of range", 1, T - 4 * H + 0.1 * H),
                _rejections("pastfc", "ts not parseable", 1, T - 6 * H + 0.1 * H),
                _rejections("busy", "pm2_5 out of range", 9, T - H + 0.1 * H),
                _rejections("gone", "pm2_5 out of range", 5, T - 30 * H + 0.1 * H),
            ],
            ignore_index=True,
        ),
    )
    return wh


def test_the_rejected_share_reads_the_runs_counts_and_scans_only_for_runs_that_cannot_say(
    settings: Settings,
):
    wh = _load(settings)
    frame = signals.rejected(wh, T)
    frame = frame.astype(object).where(frame.notna(), None)  # no reason: None, not NaN
    rows = frame[["source", "reason", "rejected", "accepted", "running"]].values.tolist()
    # synthetic: rejected 3 (ok) + 2 (failed) + 1 (lost) + 1 (pastfc); written 30 (ok, its
    # row) + 10 (failed, its row) + 5 (lost, counted in observations_raw) + 4 (old-failed,
    # likewise) + 0 (pastfc); the running run's 9 rejections and 7 rows wait for its end
    assert rows == [
        ["csv", None, 0, 40, 0],
        ["synthetic", "pm2_5 out of range", 4, 49, 1],
        ["synthetic", "ts not parseable", 3, 49, 1],
    ]

    share = conditions.rejected_share(cast(Services, SimpleNamespace(warehouse=wh)), T)
    assert share.state == "warn" and share.value == 0.125  # 7 / 56
    assert share.detail == (
        "synthetic: 12.5% of 56 rows rejected (mostly: pm2_5 out of range); "
        "1 ingest run(s) still running, counted when they end"
    )
    assert share.sources is not None
    synthetic = share.sources["synthetic"]
    assert (synthetic.rejected, synthetic.accepted, synthetic.running) == (7, 49, 1)
    assert synthetic.reasons == {"pm2_5 out of range": 4, "ts not parseable": 3}
    assert (share.sources["csv"].share, share.sources["csv"].running) == (0.0, 0)


def test_with_only_a_running_run_the_share_waits_and_says_so(settings: Settings):
    wh = _load(settings)
    late = T + 30 * H  # only "busy"'s successor window: nothing ended in it
    soon = dt.datetime.now(dt.UTC) + H
    wh.append("runs", pd.DataFrame([_run("next", late - H, "running", deadline=soon)]))
    share = conditions.rejected_share(cast(Services, SimpleNamespace(warehouse=wh)), late)
    assert share.state == "ok" and share.value is None
    assert share.detail == (
        "fewer than 20 rows ingested in 24 h; 1 ingest run(s) still running, counted when they end"
    )
    assert signals.rejected(wh, late + 48 * H).empty  # no runs at all: no rows, no reads


def test_an_ingest_run_failing_after_its_observations_landed_keeps_their_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The real job on DuckDB: a csv run whose values are partly out of range rejects
    them; a second run fails after its observations landed (its CAMS write breaks). Both
    rows say what they wrote, and the monitor's share equals the count of the rows
    themselves (what the share read before, by run_id over every partition)."""
    monkeypatch.setenv("AIRCAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    monkeypatch.setenv("AIRCAST_CSV_PATH", str(tmp_path))
    services.reset()
    as_of = T

    def csv(name: str, hours: int, bad: int) -> str:
        ts = pd.date_range(as_of - (hours - 1) * H, periods=hours, freq="h", tz="UTC")
        frame = pd.DataFrame({"location_id": "csv-site", "ts": ts.strftime("%Y-%m-%dT%H:%MZ")})
        before = [hours - 1 - k for k in range(hours)]  # hours before as_of, oldest first
        frame["pm2_5"] = [5000.0 if k < bad else 100.0 - b for k, b in enumerate(before)]
        frame["latitude"], frame["longitude"] = 1.3, 103.8
        frame.to_csv(tmp_path / name, index=False)
        return str(tmp_path / name)

    def ingest(path: str, hours: int) -> dict:
        request = IngestRequest(
            as_of=as_of, start=as_of - (hours - 1) * H, end=as_of, source="csv", path=path
        )
        return run_ingest(request, get_services())

    first = ingest(csv("first.csv", 30, bad=6), 30)
    assert first["counts"]["written"] == 24 and first["counts"]["rejected"] == 6

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("the warehouse went away")

    monkeypatch.setattr(ingest_job, "write_forecasts", broken)
    with pytest.raises(Exception, match="went away"):
        # 40 hours, the first 2 out of range: of the 38 accepted, the 24 the first run wrote
        # are the same, the 6 it rejected and 8 older ones are new
        ingest(csv("second.csv", 40, bad=2), 40)
    wh = get_services().warehouse
    failed = wh.query("SELECT counts FROM run_status WHERE status = 'failed'")
    assert json.loads(failed["counts"].iloc[0]) == {"written": 14}

    truth = wh.query("SELECT COUNT(*) AS n FROM observations_raw WHERE source = 'csv'")
    assert int(truth["n"].iloc[0]) == 24 + 14
    share = conditions.rejected_share(get_services(), as_of)
    assert share.sources is not None and share.sources["csv"].accepted == 38
    assert share.sources["csv"].rejected == 6 + 2
    assert share.value == 0.174 and share.state == "warn"  # 8 / 46, as conditions round
    assert share.detail == (
        "csv: 17.4% of 46 rows rejected (mostly: pm2_5=5000 outside physical range [0, 1500] µg/m³)"
    )
