"""The OpenAPI documents of the job functions (ingest, train, predict), generated from their
request models, so a caller (and a fuzzer) sees the accepted body without reading code.

Each function answers `GET /openapi.json` with its document; every run is `POST /` (any
other method on / is a 405). The request body's schema is the model's own validation
schema (pydantic's `model_json_schema`), the answers are the run's JSON (2xx), a caller's
mistake `{error, field}` (4xx) and a failed run's JSON (500, or 503 when the failure is
retryable, e.g. a write that kept losing a race: Cloud Scheduler retries both).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from common.runtime.runs import RunAnswer

REF = "#/components/schemas/{model}"


class JobError(BaseModel):
    """A request the function refused: what is wrong and which field."""

    error: str = Field(description="What went wrong, in one sentence.")
    field: str | None = Field(None, description="The request field at fault, if any.")
    run_id: str | None = Field(None, description="The run, when it had started.")


ERRORS = {
    400: "Bad request: the field at fault is named",
    404: "No such thing (e.g. an unknown location)",
    409: "Not ready (e.g. no production model, no data yet): the state must change first",
    413: "Body larger than AIRCAST_MAX_REQUEST_BYTES",
}


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=ref)}}},
    }


def job_openapi(
    function: str, request: type[BaseModel], summary: str, answer: type[RunAnswer] = RunAnswer
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of one job function, `request` being its body's model and
    `answer` its answer's (both the models the code validates with)."""
    body = request.model_json_schema(ref_template=REF, mode="validation")
    answers = [answer.model_json_schema(ref_template=REF, mode="serialization")]
    answers.append(JobError.model_json_schema(ref_template=REF, mode="serialization"))
    schemas: dict[str, Any] = {}
    for schema in (body, *answers):
        schemas.update(schema.pop("$defs", {}))
    schemas |= {request.__name__: body, "RunAnswer": answers[0], "JobError": answers[1]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"aircast {function}",
            "version": "1",
            "description": f"{summary} Every field is optional; an empty body runs at now.",
        },
        "paths": {
            "/": {
                "post": {
                    "summary": f"Run {function} once",
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model=request.__name__)}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("RunAnswer", "The run's answer (success, partial, rejected)"),
                        **{str(c): _json("JobError", text) for c, text in ERRORS.items()},
                        "500": _json("RunAnswer", "The run failed (recorded in runs); retried"),
                        "503": _json(
                            "RunAnswer",
                            "The run failed for now (recorded in runs, `retryable`: true); retried",
                        ),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": schemas},
    }
