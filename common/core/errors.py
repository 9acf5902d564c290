"""The one error hierarchy: every expected failure is an `AircastError`, classified by
what it means, so the function glue, the api and the CLI each handle errors with one
clause and the runs audit tells the caller's mistakes from ours.

- `CallerError`: the request, or a state the caller must change first (bad field, unknown
  thing, no model yet). A retry of the same request fails the same way.
- `Retryable`: nothing is wrong with the request and trying again will most likely work (a
  dependency unreadable for now, a write that kept losing a race).
- anything else: ours or a dependency's failure.

Which HTTP status each answers is decided at the edges only (`common.runtime.statuses`,
used by the function handler and the api); nothing below them names a status. Adapters
keep their own names (`WarehouseError`, `StoreError`, `SourceError`, ...) as subclasses
of what they mean, defined next to the adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic is only needed to read an error, never to define one
    from pydantic import ValidationError


class AircastError(Exception):
    """Base for expected errors; on its own an internal one (ours to fix)."""

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
class CallerError(AircastError):
    """The caller's to fix: the request, or a state the caller must change first."""


class BadRequest(CallerError):
    """The request is invalid; `field` names the culprit."""


class PayloadTooLarge(CallerError):
    """The request body is larger than AIRCAST_MAX_REQUEST_BYTES."""


class NotFound(CallerError):
    """The thing asked for does not exist (a location, a model, a Cloud Scheduler job)."""


class Forbidden(CallerError):
    """The request is valid but not served here (e.g. a write on a read-only api)."""


class Conflict(CallerError):
    """The system is not in a state to do this yet (e.g. no production model)."""


# -- ours or a dependency's -------------------------------------------------------------------
class BadGateway(AircastError):
    """Something we called (a public API, a served function) failed or answered badly."""


class Retryable(AircastError):
    """Nothing is wrong with the request: the same request, a little later, should work."""


class Unavailable(Retryable):
    """A dependency cannot be read now and there is nothing cached to answer from."""


class Contention(Retryable):
    """A conditional write kept losing to other writers (each attempt re-read and decided
    again); a retry will most likely succeed."""


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
