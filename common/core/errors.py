"""The one error hierarchy: every expected failure is an `AircastError` carrying its HTTP
status, so the function glue, the api and the CLI each handle errors with one clause.

4xx are the caller's fault (the request, or a state the caller must change first); 5xx are
ours or a dependency's. Adapters keep their own names (`WarehouseError`, `StoreError`,
`SourceError`, ...) as subclasses of the status they mean, defined next to the adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic is only needed to read an error, never to define one
    from pydantic import ValidationError


class AircastError(Exception):
    """Base for expected errors; on its own an internal error (500)."""

    status: int = 500

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.run_id: str | None = None  # set when raised inside an audited run

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer: `{error, field?, run_id?}`."""
        out: dict[str, Any] = {"error": self.message}
        if self.field:
            out["field"] = self.field
        if self.run_id:
            out["run_id"] = self.run_id
        return out


# -- the caller's fault -----------------------------------------------------------------------
class BadRequest(AircastError):
    """The request is invalid; `field` names the culprit."""

    status = 400


class PayloadTooLarge(AircastError):
    """The request body is larger than AIRCAST_MAX_REQUEST_BYTES."""

    status = 413


class Forbidden(AircastError):
    """The request is valid but not served here (e.g. a write on a read-only api)."""

    status = 403


class NotFound(AircastError):
    """The thing asked for does not exist (a location, an artifact, a Cloud Scheduler job)."""

    status = 404


class Conflict(AircastError):
    """The system is not in a state to do this yet (e.g. no production model)."""

    status = 409


class PreconditionFailed(AircastError):
    """A conditional write lost: the object changed since the writer read it."""

    status = 412


# -- ours or a dependency's -------------------------------------------------------------------
class BadGateway(AircastError):
    """Something we called (a public API, a served function) failed or answered badly."""

    status = 502


class Unavailable(AircastError):
    """A dependency cannot be read now and there is nothing cached to answer from."""

    status = 503


class RunFailed(AircastError):
    """A run failed unexpectedly; carries the run's JSON answer (status "failed")."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(str(result.get("error", "run failed")))
        self.result = result
        self.run_id = result.get("run_id")

    def to_dict(self) -> dict[str, Any]:
        return self.result


def validation_message(exc: ValidationError, where: str = "body") -> tuple[str, str]:
    """(field, "field: message") of a pydantic error's first problem, e.g. ("as_of",
    "as_of: not an ISO-8601 time"); `where` names the whole input when the problem has no
    field. Every place that reports a validation error says it this one way."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or where
    return field, f"{field}: {err['msg'].removeprefix('Value error, ')}"
