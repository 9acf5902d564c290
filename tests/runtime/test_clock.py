"""A run's as_of is checked against the real clock: a request about a future hour (which
would publish forecasts, a status or a model dated after now) is a 400 naming as_of,
before any run; a clock a little fast (AIRCAST_MAX_CLOCK_SKEW_SECONDS) is tolerated."""

from __future__ import annotations

import datetime as dt

import flask
import pytest
from click.testing import CliRunner

from common.core.config import get_settings
from common.core.timeutil import iso
from common.ingest.job import IngestRequest
from common.monitoring.job import MonitorRequest
from common.ops.cli import main
from common.predict.job import PredictRequest
from common.runtime.handler import handle
from common.train.job import TrainRequest

MODELS = [IngestRequest, TrainRequest, PredictRequest, MonitorRequest]
app = flask.Flask(__name__)


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch):
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _never(request: object, services: object) -> dict:
    raise AssertionError("the job must not run for a future as_of")


def _ok(request: object, services: object) -> dict:
    return {"status": "success"}


def _post(model, body, job=_never):
    with app.test_request_context("/", method="POST", json=body):
        return handle(flask.request, model, job)


def _ahead(**delta: float) -> str:
    return iso(dt.datetime.now(dt.UTC) + dt.timedelta(**delta))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_an_as_of_six_days_ahead_is_a_400_naming_as_of(model):
    body, status = _post(model, {"as_of": _ahead(days=6)})
    assert status == 400 and body["field"] == "as_of", body
    assert "AIRCAST_MAX_CLOCK_SKEW_SECONDS" in body["error"]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_clock_a_little_fast_is_tolerated(model):
    body, status = _post(model, {"as_of": _ahead(minutes=2)}, _ok)
    assert status == 200, body


def test_the_skew_is_a_setting(monkeypatch):
    monkeypatch.setenv("AIRCAST_MAX_CLOCK_SKEW_SECONDS", "0")
    get_settings.cache_clear()
    body, status = _post(PredictRequest, {"as_of": _ahead(minutes=2)})
    assert status == 400 and body["field"] == "as_of", body
    assert "0s" in body["error"]


def test_other_time_fields_keep_the_week_ahead_bound():
    """Only as_of is a run's clock; forecast hours (e.g. a backfill's end checked against
    as_of elsewhere) keep the wide range."""
    past = iso(dt.datetime(2024, 3, 1, tzinfo=dt.UTC))
    body, status = _post(IngestRequest, {"as_of": past, "start": past, "end": past}, _ok)
    assert status == 200, body


def test_the_cli_refuses_a_future_as_of(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRCAST_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["predict", "--as-of", _ahead(days=6)])
    assert result.exit_code != 0
    assert "AIRCAST_MAX_CLOCK_SKEW_SECONDS" in result.output, result.output
    assert not (tmp_path / "home" / "artifacts" / "serving").exists()
