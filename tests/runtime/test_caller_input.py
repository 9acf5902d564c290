"""Whatever a caller sends is a 4xx naming what is wrong, never a 5xx (which Cloud
Scheduler would retry): bodies nested 100,000 deep, NUL bytes and 100 kB strings in any
field, booleans for integers and text for booleans, chunked bodies over the size limit,
repeated query parameters, and a train on too little history (one status whatever the
body asks)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import flask
import pytest
import requests
from werkzeug.serving import make_server

from common.core.config import get_settings
from common.core.timeutil import iso
from common.ingest.job import IngestRequest, run_ingest
from common.monitoring.job import MonitorRequest
from common.predict.job import PredictRequest
from common.runtime import services
from common.runtime.handler import handle
from common.train.job import TrainRequest, run_train
from tests.train.test_train import TRAIN_ENV

MODELS = [IngestRequest, TrainRequest, PredictRequest, MonitorRequest]
app = flask.Flask(__name__)


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch):
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _never(request: object, services: object) -> dict:
    raise AssertionError("the job must not run for a bad request")


def _ok(request: object, services: object) -> dict:
    return {"status": "success"}


def _post(model, job=_never, path="/", **kwargs):
    with app.test_request_context(path, method="POST", **kwargs):
        return handle(flask.request, model, job)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_json_nested_100000_deep_is_a_400(model):
    body, status = _post(model, data="[" * 100_000, content_type="application/json")
    assert status == 400 and body["field"] == "body" and "deeper than" in body["error"], body
    body, status = _post(model, data='{"as_of": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert status == 400, body


@pytest.mark.parametrize(
    ("model", "field"),
    [(IngestRequest, "path"), (IngestRequest, "source"), (TrainRequest, "target")],
)
def test_a_nul_byte_in_any_field_is_a_400_naming_it(model, field):
    body, status = _post(model, json={field: "/tmp/a\x00b.csv"})
    assert status == 400 and body["field"] == field and "NUL" in body["error"], body


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_nul_at_the_end_of_as_of_is_a_400(model):
    body, status = _post(model, json={"as_of": "2024-03-01T00:00:00Z\x00"})
    assert status == 400 and body["field"] == "as_of", body


def test_a_100_kb_path_is_a_400_and_not_echoed_whole():
    body, status = _post(IngestRequest, json={"source": "csv", "path": "a" * 100_000})
    assert status == 400 and body["field"] == "path", body
    assert len(str(body)) < 1000


def test_an_over_long_unknown_field_name_is_not_echoed_whole():
    body, status = _post(PredictRequest, json={"x" * 100_000: 1})
    assert status == 400 and len(str(body)) < 1000, body


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (PredictRequest, {"shard": False}, "shard"),
        (PredictRequest, {"shards": True}, "shards"),
        (PredictRequest, {"shard": "0"}, "shard"),
        (TrainRequest, {"tune": "yes"}, "tune"),
        (TrainRequest, {"tune": 1}, "tune"),
        (TrainRequest, {"window_days": 30.5}, "window_days"),
    ],
)
def test_booleans_and_integers_are_strict(model, body, field):
    answer, status = _post(model, json=body)
    assert status == 400 and answer["field"] == field, answer


def test_json_integers_booleans_and_query_numbers_are_accepted():
    assert _post(PredictRequest, _ok, json={"shard": 0, "shards": 1})[1] == 200
    assert _post(TrainRequest, _ok, json={"tune": False, "window_days": 30})[1] == 200
    assert _post(PredictRequest, _ok, path="/?shard=0")[1] == 200


def test_shards_without_shard_is_accepted_as_its_schema_says():
    seen = {}

    def job(request: PredictRequest, services: object) -> dict:
        seen["request"] = request
        return {"status": "success"}

    body, status = _post(PredictRequest, job, json={"shards": 3})
    assert status == 200, body
    from common.core.sharding import shards_to_run

    assert shards_to_run(None, 3, 1) == ([0, 1, 2], 3)


def test_a_repeated_query_parameter_is_a_400_naming_it():
    body, status = _post(PredictRequest, path="/?shard=0&shard=1", json={})
    assert status == 400 and body["field"] == "shard" and "more than once" in body["error"]


@pytest.fixture
def served() -> Iterator[str]:
    """The handler behind werkzeug's threaded server, which decodes chunked bodies."""
    server_app = flask.Flask("served")

    @server_app.route("/", methods=["POST"])
    def root():  # type: ignore[no-untyped-def]
        return handle(flask.request, PredictRequest, _ok)

    server = make_server("127.0.0.1", 0, server_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_a_chunked_body_over_the_limit_is_a_413(served):
    def chunks() -> Iterator[bytes]:
        yield b'{"as_of": "'
        for _ in range(3000):
            yield b"x" * 1000
        yield b'"}'

    r = requests.post(served, data=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["field"] == "body", r.text
    small = requests.post(served, data=iter([b'{"shard"', b": 0}"]), timeout=10)
    assert small.status_code == 200, small.text


def test_train_on_too_little_history_is_one_409_whatever_the_body(tmp_path, monkeypatch):
    """A few rows spread over the window pass the plan's span check but leave nothing to
    fit: a plain train and a tuning one answer the same 4xx."""
    monkeypatch.setenv("AIRCAST_HOME", str(tmp_path / "home"))
    for k, v in TRAIN_ENV.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    services.reset()
    as_of = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
    for end in (as_of - dt.timedelta(days=40), as_of - dt.timedelta(hours=1)):
        start = end - dt.timedelta(hours=2)
        request = {"as_of": iso(as_of), "start": iso(start), "end": iso(end)}
        assert _post(IngestRequest, run_ingest, json=request)[1] == 200
    answers = [
        _post(TrainRequest, run_train, json={"as_of": iso(as_of), **extra})
        for extra in ({}, {"tune": True})
    ]
    assert [status for _, status in answers] == [409, 409], answers
    assert all("history" in body["error"] for body, _ in answers), answers
