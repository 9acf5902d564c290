"""The HTTP status of each error, decided here for the two edges that answer HTTP: the
function handler (`common.runtime.handler`) and the api (`common.serving.api`).

By what the error means (`common.core.errors`), most specific class first: the caller's
mistakes are 4xx; a retryable failure (a dependency unreadable for now, a write that kept
losing a race) is 503, which Cloud Scheduler retries (any answer outside 200-299 is a
failed attempt, retried per the job's retry_config: the Cloud Scheduler API reference,
HttpTarget and RetryConfig) and which says "try again" to any other client; anything else
is 500, or 502 when a dependency answered badly.
"""

from __future__ import annotations

from common.core.errors import (
    AircastError,
    BadGateway,
    BadRequest,
    CallerError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Retryable,
    RunFailed,
)

STATUSES: tuple[tuple[type[AircastError], int], ...] = (
    (BadRequest, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (CallerError, 400),
    (BadGateway, 502),
    (Retryable, 503),
)


def http_status(exc: BaseException) -> int:
    """The status `exc` answers; a failed run answers its cause's (500 unless retryable)."""
    if isinstance(exc, RunFailed):
        cause = exc.__cause__
        return 503 if isinstance(cause, Retryable) else 500
    for cls, status in STATUSES:
        if isinstance(exc, cls):
            return status
    return 500
