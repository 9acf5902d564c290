"""The runs audit row and the structured log lines of a run; a run whose row cannot be
written answers failed, never success."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging

import pandas as pd
import pytest

from common.core.config import Settings
from common.core.errors import Conflict, RunFailed
from common.core.logs import JsonFormatter, event, get_logger, log_context
from common.ingest.job import IngestRequest, run_ingest
from common.runtime.runs import track_run
from common.runtime.services import Services
from common.runtime.statuses import http_status
from common.storage import open_store
from common.warehouse import open_warehouse
from common.warehouse.duckdb_warehouse import DuckDBWarehouse

AS_OF = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)


def test_log_lines_are_cloud_logging_json():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = get_logger("test")
    logger.addHandler(handler)
    try:
        with log_context(run_id="r-1", function="ingest"):
            event(logger, "fetched", logging.WARNING, rows=3)
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["severity"] == "WARNING" and entry["message"] == "fetched"
    assert (entry["run_id"], entry["function"], entry["rows"]) == ("r-1", "ingest", 3)


def test_a_successful_run_appends_one_row(settings: Settings):
    wh = open_warehouse(settings)
    wh.ensure_schema()
    with track_run(wh, "ingest", AS_OF, {"source": "synthetic"}) as run:
        run.counts["fetched"] = 5
        run.answer["failed_locations"] = []
    rows = wh.query("SELECT * FROM run_status")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["run_id"] == run.run_id and row["status"] == "success"
    assert row["as_of"] == AS_OF and json.loads(row["counts"]) == {"fetched": 5}
    assert json.loads(row["params"]) == {"source": "synthetic"}
    assert (
        run.result()["failed_locations"] == [] and run.result()["as_of"] == "2024-03-01T12:00:00Z"
    )


@pytest.mark.emulator
def test_a_runs_audit_rows_take_the_storage_write_api_not_load_jobs(gcp_settings: Settings):
    """BigQuery allows 1,500 load jobs per table per day, so a run's start and outcome rows
    must not be load jobs (with N predict shards an hour they once capped N at 28): each is
    one committed Storage Write stream, and `run_status` reads the run as on DuckDB."""
    from tests.warehouse.test_warehouse_contract import append_paths, counting_warehouse

    wh, session = counting_warehouse(gcp_settings)
    session.calls.clear()
    with track_run(wh, "predict", AS_OF, {"shard": 3, "shards": 40}) as run:
        run.counts["written"] = 24
    assert append_paths(session.calls) == {
        "load jobs": 0, "uploads": 0, "insertAll": 0, "write streams": 2, "appends": 2,
        "finalized": 2,
    }, session.calls  # fmt: skip
    rows = wh.query("SELECT * FROM runs ORDER BY finished_at NULLS FIRST")
    assert rows["status"].tolist() == ["running", "success"]
    assert (rows["run_id"] == run.run_id).all()
    status = wh.query("SELECT run_id, status, counts FROM run_status")
    assert status.to_dict("records") == [
        {"run_id": run.run_id, "status": "success", "counts": '{"written": 24}'}
    ]


def test_a_failed_run_is_recorded_with_its_error(local_settings: Settings):
    wh = open_warehouse(local_settings)
    with pytest.raises(RunFailed) as info, track_run(wh, "train", AS_OF) as run:
        raise RuntimeError("disk full")
    assert info.value.result["status"] == "failed" and "disk full" in info.value.result["error"]
    with pytest.raises(Conflict) as conflict, track_run(wh, "predict", AS_OF):
        raise Conflict("no production model")
    assert conflict.value.run_id is not None
    rows = wh.query("SELECT function, status, error FROM run_status ORDER BY function DESC")
    # The caller's 4xx is a refused request, counted apart from failed runs.
    assert list(rows["status"]) == ["failed", "refused"]
    assert "disk full" in rows["error"].iloc[0]
    assert run.run_id.startswith("train-20240301T1200Z-")


class NoAuditWarehouse(DuckDBWarehouse):
    """A real DuckDB warehouse whose `runs` table cannot be appended to (e.g. a quota)."""

    def append(self, table: str, frame: pd.DataFrame, key: str | None = None) -> int:
        if table == "runs":
            raise OSError("simulated: the runs table refused the write")
        return super().append(table, frame, key=key)


def test_a_run_whose_audit_row_cannot_be_written_does_not_answer_success(
    local_settings: Settings,
):
    wh = NoAuditWarehouse(local_settings)
    wh.ensure_schema()
    with pytest.raises(RunFailed) as info, track_run(wh, "ingest", AS_OF) as run:
        run.counts["fetched"] = 5
    result = info.value.result
    assert result["status"] == "failed" and result["run_id"] == run.run_id
    assert "could not record the run" in result["error"] and "refused the write" in result["error"]
    assert result["counts"] == {"fetched": 5}
    assert wh.query("SELECT * FROM run_status").empty


def test_a_job_whose_audit_row_cannot_be_written_answers_failed(local_settings: Settings):
    """run_ingest lands its rows but cannot record its run: a failed answer (a 5xx from the
    function glue, so the scheduler retries the idempotent run), not a success."""
    wh = NoAuditWarehouse(local_settings)
    svc = Services(local_settings, wh, open_store(local_settings))
    request = IngestRequest(as_of=AS_OF, source="synthetic")
    with pytest.raises(RunFailed) as info:
        run_ingest(request, svc)
    assert info.value.result["status"] == "failed"
    assert http_status(info.value) == 500
    assert wh.query("SELECT * FROM run_status").empty
    assert not wh.query("SELECT * FROM observations_raw").empty


def test_a_failing_run_keeps_its_own_error_when_its_audit_row_cannot_be_written(
    local_settings: Settings,
):
    wh = NoAuditWarehouse(local_settings)
    with pytest.raises(Conflict, match="no production model"), track_run(wh, "predict", AS_OF):
        raise Conflict("no production model")
    with pytest.raises(RunFailed) as info, track_run(wh, "train", AS_OF):
        raise RuntimeError("disk full")
    assert "RuntimeError: disk full" in info.value.result["error"]
