"""`aircast run-job`: asks Cloud Scheduler (its REST API, served on loopback) to run a job."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from common.ops.cli import main

PROJECT = "aircast-test"
JOB = f"projects/{PROJECT}/locations/europe-west1/jobs/aircast-ingest-hourly"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("AIRCAST_REGION", "europe-west1")


def test_run_job_by_function_name_posts_run_for_its_scheduled_job(env, httpserver: HTTPServer):
    httpserver.expect_oneshot_request(f"/v1/{JOB}:run", method="POST").respond_with_json(
        {
            "name": JOB,
            "schedule": "5 * * * *",
            "timeZone": "Etc/UTC",
            "state": "ENABLED",
            "httpTarget": {"uri": "https://aircast-ingest-abc-ew.a.run.app"},
        }
    )
    endpoint = httpserver.url_for("").rstrip("/")
    result = CliRunner().invoke(main, ["run-job", "ingest", "--endpoint", endpoint])
    assert result.exit_code == 0, result.output
    httpserver.check_assertions()
    assert f"{JOB}: run requested (ENABLED, 5 * * * * Etc/UTC)" in result.output
    assert "https://aircast-ingest-abc-ew.a.run.app" in result.output


def test_unknown_job_is_one_clear_line(env, httpserver: HTTPServer):
    missing = f"projects/{PROJECT}/locations/us-east1/jobs/nope"
    httpserver.expect_oneshot_request(f"/v1/{missing}:run", method="POST").respond_with_json(
        {"error": {"code": 404, "message": "Job not found.", "status": "NOT_FOUND"}}, status=404
    )
    endpoint = httpserver.url_for("").rstrip("/")
    args = ["run-job", "nope", "--region", "us-east1", "--endpoint", endpoint]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert f"no job {missing}" in result.output and "Traceback" not in result.output
    httpserver.check_assertions()


def test_run_job_needs_a_project(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("AIRCAST_PROJECT", raising=False)
    result = CliRunner().invoke(main, ["run-job", "aircast-ingest-hourly"])
    assert result.exit_code == 1 and "GOOGLE_CLOUD_PROJECT" in result.output
