"""Errors that map to HTTP answers: the caller's fault (4xx) versus ours (5xx)."""

from __future__ import annotations


class AircastError(Exception):
    """Base for errors with an HTTP status."""

    status = 500

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.run_id: str | None = None  # set when raised inside an audited run

    def to_dict(self) -> dict[str, str]:
        out = {"error": self.message}
        if self.field:
            out["field"] = self.field
        if self.run_id:
            out["run_id"] = self.run_id
        return out


class BadRequest(AircastError):
    """The request is invalid; `field` names the culprit."""

    status = 400


class NotFoundError(AircastError):
    status = 404


class Conflict(AircastError):
    """The system is not in a state to do this yet (e.g. no production model)."""

    status = 409


class RunFailed(Exception):
    """A run failed unexpectedly; carries the run's JSON answer (status "failed")."""

    def __init__(self, result: dict) -> None:
        super().__init__(result.get("error", "run failed"))
        self.result = result
