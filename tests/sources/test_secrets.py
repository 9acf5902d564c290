"""No secret persists: every secret setting holds a marker, every public-API source is
driven down each failure path (non-JSON, malformed JSON, an error status in the body, HTTP
errors, a timeout) against a local server that echoes the request (URL, query string and
headers) in its answer, and the marker is then found in no table, log line, file under
AIRCAST_HOME, or answer."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import flask
import pytest
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from common.core.catalog import CLOUD_SOURCES, SOURCES
from common.core.config import Settings, get_settings
from common.core.logs import JsonFormatter
from common.core.schema import TABLES
from common.core.views import VIEWS
from common.ingest.job import IngestRequest, run_ingest
from common.runtime import services
from common.runtime.handler import handle
from common.runtime.services import get_services

MARKER = "MARKERs3cr3tZq81"
AS_OF = "2024-03-01T12:00:00Z"
app = flask.Flask(__name__)

# Every secret setting, whatever source takes it (a new source's key is covered by being
# declared a SecretStr setting).
SECRET_FIELDS = [
    name
    for name, info in Settings.model_fields.items()
    if SecretStr in getattr(info.annotation, "__args__", (info.annotation,))
]
URL_FIELDS = [name for name in Settings.model_fields if name.endswith("_url")]


def _echo(request: Request) -> str:
    return json.dumps({"url": request.url, "headers": dict(request.headers)})


def _slow(request: Request) -> Response:
    time.sleep(0.6)
    return Response(_echo(request), content_type="application/json")


MODES = {
    "non-json": lambda r: Response(f"<html>{_echo(r)}</html>", content_type="text/html"),
    "malformed": lambda r: Response(
        json.dumps(
            {
                "status": "ok",
                "code": 0,
                "data": {"echo": _echo(r)},
                "hourly": {"echo": _echo(r)},
                "latitude": 1.5,
                "longitude": 103.8,
                "echo": _echo(r),
            }
        ),
        content_type="application/json",
    ),
    "error-in-body": lambda r: Response(
        json.dumps(
            {
                "status": "error",
                "code": 4,
                "data": _echo(r),
                "errorMsg": _echo(r),
                "error": True,
                "reason": _echo(r),
            }
        ),
        content_type="application/json",
    ),
    "http-401": lambda r: Response(_echo(r), status=401, content_type="text/plain"),
    "http-404-json": lambda r: Response(
        json.dumps({"error": _echo(r)}), status=404, content_type="application/json"
    ),
    "http-500": lambda r: Response(_echo(r), status=500, content_type="text/plain"),
    "timeout": _slow,
}


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """Every log line of the process at DEBUG, ours (JSON) and libraries' (urllib3 logs
    each URL it requests)."""
    stream = io.StringIO()
    ours = logging.StreamHandler(stream)
    ours.setFormatter(JsonFormatter())
    plain = logging.StreamHandler(stream)
    aircast, root = logging.getLogger("aircast"), logging.getLogger()
    levels = aircast.level, root.level
    aircast.addHandler(ours)
    root.addHandler(plain)
    root.setLevel(logging.DEBUG)
    yield stream
    aircast.removeHandler(ours)
    root.removeHandler(plain)
    root.setLevel(levels[1])


# What a source needs besides its secret to make a request at all.
SOURCE_ENV = {"openaq": {"AIRCAST_OPENAQ_BBOX": "103.6,1.2,104.1,1.5"}}


def _settings_env(monkeypatch, tmp_path: Path, server: HTTPServer, source: str) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    monkeypatch.setenv("AIRCAST_HOME", str(home))
    monkeypatch.setenv("AIRCAST_HTTP_RETRIES", "0")
    monkeypatch.setenv("AIRCAST_HTTP_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("AIRCAST_LOG_LEVEL", "DEBUG")
    for name in SECRET_FIELDS:
        monkeypatch.setenv(f"AIRCAST_{name.upper()}", MARKER)
    for name in URL_FIELDS:  # every public API at the echoing server, same paths
        path = urlsplit(Settings.model_fields[name].default).path
        monkeypatch.setenv(f"AIRCAST_{name.upper()}", server.url_for(path))
    for name, value in SOURCE_ENV.get(source, {}).items():
        monkeypatch.setenv(name, value)
    places = tmp_path / "locations.toml"
    places.write_text(
        f'[[location]]\nid = "site-a"\nname = "site a"\nlatitude = 1.5\nlongitude = 103.8\n'
        f'source = "{source}"\ntimezone = "Asia/Singapore"\n'
    )
    monkeypatch.setenv("AIRCAST_LOCATIONS_FILE", str(places))
    get_settings.cache_clear()
    services.reset()
    return home


def test_every_source_that_takes_a_secret_declares_it_as_one():
    for info in SOURCES.values():
        if info.token_setting:
            assert info.token_setting in SECRET_FIELDS, info
    assert SECRET_FIELDS  # the test below sets a marker in each


# Every source that takes a secret (AIRCAST_AQICN_TOKEN; a new source's key by declaring
# its `token_setting` in the catalog).
SECRET_SOURCES = [name for name in CLOUD_SOURCES if SOURCES[name].token_setting]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("source", SECRET_SOURCES)
def test_no_secret_persists_on_any_failure_path(
    source, mode, tmp_path, httpserver, monkeypatch, log_text
):
    httpserver.expect_request(re.compile(".*")).respond_with_handler(MODES[mode])
    home = _settings_env(monkeypatch, tmp_path, httpserver, source)
    body = {"as_of": AS_OF, "source": source}
    with app.test_request_context("/", method="POST", json=body):
        answer, status = handle(flask.request, IngestRequest, run_ingest)
    if mode == "timeout":  # let the server finish, so no late request leaks out
        deadline = time.monotonic() + 5
        while not httpserver.log and time.monotonic() < deadline:
            time.sleep(0.05)
    assert httpserver.log, "the source never called the echoing server"
    assert any(MARKER in str(req.url) + str(dict(req.headers)) for req, _ in httpserver.log), (
        "the secret was not sent, so its echo proves nothing"
    )
    assert status >= 400 or answer["status"] != "success", answer

    found = []
    if MARKER in json.dumps(answer):
        found.append(f"answer: {answer}")
    warehouse = get_services().warehouse
    for name in (*TABLES, *VIEWS):
        text = warehouse.query(f"SELECT * FROM {name}").to_csv()
        if MARKER in text:
            found.append(f"table {name}: {text[:500]}")
    services.reset()  # closes the DuckDB file, so its bytes are final
    for path in home.rglob("*"):
        if path.is_file() and MARKER.encode() in path.read_bytes():
            found.append(f"file {path}")
    if MARKER in log_text.getvalue():
        line = next(x for x in log_text.getvalue().splitlines() if MARKER in x)
        found.append(f"log: {line[:500]}")
    assert not found, "\n".join(found)


def test_the_redaction_masks_credential_parameters_and_secret_values(monkeypatch):
    from common.core.redaction import redact

    monkeypatch.setenv("AIRCAST_AQICN_TOKEN", "abcd1234secret")
    get_settings.cache_clear()
    text = (
        "GET /feed/?token=t0k&api_key=k3y&key=k&access_token=a&lat=1 "
        '{"X-API-Key": "h3ader"} Authorization: Bearer b3arer abcd1234secret'
    )
    out = redact(text)
    for secret in ("t0k", "k3y", "=k&", "access_token=a", "h3ader", "b3arer", "abcd1234secret"):
        assert secret not in out, out
    assert "lat=1" in out and "/feed/" in out
    get_settings.cache_clear()
