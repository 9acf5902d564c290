"""HTTP glue shared by the function entry points: parse, validate, run, answer JSON.

A bad request is a 400 naming the field; a missing precondition (no model yet) a 409; a
failed run a 500, or a 503 when it failed for now (`Retryable`), so that Cloud Scheduler
retries. Nothing the caller sends produces a 5xx. The statuses come from
`common.runtime.statuses`, the one table of them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import flask
from pydantic import BaseModel, ValidationError

from common.core.config import ConfigError, Settings, get_settings
from common.core.errors import (
    AircastError,
    BadRequest,
    CallerError,
    RunFailed,
    validation_message,
)
from common.core.logs import configure_logging, event, get_logger
from common.core.redaction import redact_value
from common.runtime.body import parse_json, query_args, read_body, truncate
from common.runtime.openapi import job_openapi
from common.runtime.runs import RunAnswer
from common.runtime.services import Services, get_services
from common.runtime.statuses import http_status

log = get_logger("http")
M = TypeVar("M", bound=BaseModel)

# Run statuses answered with 2xx; anything else ("failed") is a 5xx.
OK_STATUSES = {"success", "partial", "rejected"}


DEFAULT_BODY_LIMIT: int = Settings.model_fields["max_request_bytes"].default


def request_data(request: flask.Request, limit: int = DEFAULT_BODY_LIMIT) -> dict[str, Any]:
    """The JSON body (or an empty one, at most `limit` bytes) merged over query-string
    arguments, within the caller-input bounds of `common.runtime.body` (a 400 naming the
    field otherwise: a repeated parameter, too deep, a NUL, an over-long string)."""
    data: dict[str, Any] = query_args(request)
    raw = read_body(request, limit)
    if raw.strip():
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise AircastBadBody("request body must be a JSON object", field="body")
        data.update(body)
    return data


class AircastBadBody(BadRequest):
    """A function's request body or fields fail validation."""


def parse(model: type[M], data: dict[str, Any]) -> M:
    """`data` validated strictly into `model`: `{"shard": false}` is not shard 0 and
    `{"tune": "yes"}` is not true (JSON has booleans and integers of its own)."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        field, message = validation_message(exc)
        raise AircastBadBody(truncate(message), field=truncate(field, 100)) from None


def _log_level() -> str:
    """AIRCAST_LOG_LEVEL when the settings load (a bad setting is reported by the run)."""
    try:
        return get_settings().log_level
    except ConfigError:
        return "INFO"


def _body_limit() -> int:
    """AIRCAST_MAX_REQUEST_BYTES when the settings load, else its default."""
    try:
        return get_settings().max_request_bytes
    except ConfigError:
        return DEFAULT_BODY_LIMIT


def describe(
    model: type[M],
    job: Callable[[M, Services], dict[str, Any]],
    answer: type[RunAnswer] = RunAnswer,
) -> dict[str, Any]:
    """The function's OpenAPI document: named after the job (`run_ingest` -> ingest), its
    summary the first line of the job module's docstring, its body `model`'s schema and its
    answer `answer`'s."""
    doc = sys.modules[job.__module__].__doc__ or ""
    summary = doc.strip().splitlines()[0] if doc.strip() else ""
    return job_openapi(job.__name__.removeprefix("run_"), model, summary, answer)


def handle(
    request: flask.Request,
    model: type[M],
    job: Callable[[M, Services], dict[str, Any]],
    answer: type[RunAnswer] = RunAnswer,
) -> tuple[dict[str, Any], int]:
    """`_handle`'s answer through the one redaction: no secret reaches a caller."""
    body, status = _handle(request, model, job, answer)
    return redact_value(body), status


def _not_allowed(request: flask.Request, allow: str) -> tuple[dict[str, Any], int]:
    """A 405 naming the methods served, in the body and in the `Allow` header (set on the
    response when one is made: functions-framework and Flask's dispatch)."""

    def header(response: flask.Response) -> flask.Response:
        response.headers["Allow"] = allow
        return response

    if flask.has_request_context():
        flask.after_this_request(header)
    return {"error": f"method {request.method} not allowed; use {allow}"}, 405


def _handle(
    request: flask.Request,
    model: type[M],
    job: Callable[[M, Services], dict[str, Any]],
    answer: type[RunAnswer] = RunAnswer,
) -> tuple[dict[str, Any], int]:
    """Validate the request into `model`, run `job` with this process's services (the
    composition root: jobs never fetch their own), and map the outcome to a status.
    `GET /openapi.json` answers the function's document; a run is a POST only."""
    configure_logging(_log_level())
    if request.path == "/openapi.json":
        if request.method in ("GET", "HEAD"):
            return describe(model, job, answer), 200
        return _not_allowed(request, "GET, HEAD")
    if request.method != "POST":  # a GET (a probe, a crawler) must never start a run
        return _not_allowed(request, "POST")
    try:
        params = parse(model, request_data(request, _body_limit()))
        result = job(params, get_services())
    except RunFailed as exc:  # recorded in `runs`; a 5xx makes Cloud Scheduler retry
        log.error("run failed", exc_info=exc.__cause__)
        return exc.to_dict(), http_status(exc)  # 503 when retryable, else 500
    except ConfigError as exc:
        event(log, "configuration error", logging.ERROR, error=str(exc))
        return exc.to_dict(), http_status(exc)
    except AircastError as exc:
        if not isinstance(exc, CallerError):
            log.error("request failed", exc_info=exc)
        return exc.to_dict(), http_status(exc)
    except Exception as exc:  # raised outside any run (e.g. opening the warehouse): no `runs`
        # row records it, only this log line; the 5xx makes Cloud Scheduler retry
        log.exception("request failed")
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, 500
    return result, 200 if result.get("status") in OK_STATUSES else 500
