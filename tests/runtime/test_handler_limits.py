"""Every job function's handler refuses times outside the accepted range and oversized
bodies as the caller's mistake (4xx naming the field), before any run or warehouse."""

from __future__ import annotations

import flask
import pytest

from common.core.config import get_settings
from common.core.timeutil import EARLIEST, LATEST_AHEAD
from common.ingest.job import IngestRequest
from common.predict.job import PredictRequest
from common.runtime.handler import handle
from common.train.job import TrainRequest

MODELS = [IngestRequest, TrainRequest, PredictRequest]
app = flask.Flask(__name__)


def _never(request: object, services: object) -> dict:
    raise AssertionError("the job must not run for a bad request")


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    "as_of", ["0001-01-01T00:00:00Z", "9999-12-31T23:00:00Z", "1969-12-31T23:00:00Z"]
)
def test_times_outside_the_range_are_a_400_naming_as_of(model, as_of, monkeypatch):
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    with app.test_request_context("/", method="POST", json={"as_of": as_of}):
        body, status = handle(flask.request, model, _never)
    assert status == 400 and body["field"] == "as_of", body
    assert f"{LATEST_AHEAD.days} days after now" in body["error"]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_an_oversized_body_is_a_413(model, monkeypatch):
    monkeypatch.setenv("AIRCAST_MAX_REQUEST_BYTES", "4096")
    data = b'{"as_of": "' + b" " * 5000 + b'"}'
    with app.test_request_context("/", method="POST", data=data):
        body, status = handle(flask.request, model, _never)
    assert status == 413 and body["field"] == "body" and "4096 bytes" in body["error"], body


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Settings are read once per process: read them again around each test."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_range_starts_at_the_epoch():
    assert EARLIEST.isoformat() == "1970-01-01T00:00:00+00:00"
