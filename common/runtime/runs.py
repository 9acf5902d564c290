"""The run audit: every function run appends a `running` row when it starts and its outcome
row when it ends (append-only), and logs its events.

`track_run` gives a run its id, puts run_id/function on every log line, records the start
(with a deadline: started_at + the function's timeout) and the outcome (success, partial,
rejected or failed, with counts and the error). A run killed in between (a timeout, out of
memory, kill -9) leaves its start row, which the `run_status` view reports as `lost` once
past the deadline. The start row is best effort (a run whose start cannot be recorded still
runs); the outcome row is not.
A run whose row cannot be written answers failed: an unaudited success would be invisible
to whoever reads `runs`, and a retry of an idempotent job costs little.

`run_job` is the prelude every job shares (as_of, params, the audited run, the answer), so
a job's own module holds only its logic: a body that takes the `Run` and returns an
`Outcome`. The answer is checked against the job's `RunAnswer` model before the run is
recorded a success: a field the model does not declare fails the run where it is written,
not the reader that expected another name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from common.core.config import ConfigError, get_settings
from common.core.deploy import TIMEOUT_SECONDS
from common.core.errors import AircastError, CallerError, Retryable, RunFailed
from common.core.faults import checkpoint
from common.core.logs import event, get_logger, log_context
from common.core.redaction import redact, redact_value
from common.core.timeutil import UTC, iso, resolve_as_of
from common.runtime.services import Services
from common.warehouse import Warehouse

log = get_logger("runs")

# Outcomes; the start row: running. `refused`: the caller's request, found wrong once the
# run had started (a 4xx: tune on too little history, a target with no model), is no failure.
STATUSES = ("success", "partial", "rejected", "failed", "refused")


class RunAnswer(BaseModel):
    """A run's JSON answer: what `run_job` returns and the function answers. Each job's
    answer model adds its own fields (every one optional: a failed run answers what it had
    by then); extra="forbid" makes the model the list of what an answer may hold."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    function: str
    status: Literal["success", "partial", "rejected", "failed", "refused"]
    as_of: dt.datetime = Field(description="The run's as_of, ISO-8601 UTC.")
    counts: dict[str, int]
    error: str | None = Field(None, description="Why the run failed (status failed).")
    retryable: bool | None = Field(
        None, description="True when the run failed for now (answered 503): run it again."
    )


@dataclass
class Run:
    function: str
    as_of: dt.datetime
    params: dict[str, Any]
    run_id: str
    started_at: dt.datetime
    status: str = "success"
    deadline_at: dt.datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    answer: dict[str, Any] = field(default_factory=dict)  # extra fields of the response
    error: str | None = None

    def take(self, outcome: Outcome) -> None:
        """Adopt a body's outcome (also before failing, so the failed row keeps its counts)."""
        self.counts = dict(outcome.counts)
        self.answer.update(outcome.answer)
        self.status = outcome.status

    def result(self) -> dict[str, Any]:
        """The JSON answer of the run."""
        out = {
            "run_id": self.run_id,
            "function": self.function,
            "status": self.status,
            "as_of": iso(self.as_of),
            "counts": self.counts,
            **self.answer,
        }
        if self.error:
            out["error"] = self.error
        return redact_value(out)


@dataclass(frozen=True)
class Outcome:
    """What a job's body answers: its counts, the extra fields of its answer, its status."""

    counts: Mapping[str, int]
    answer: Mapping[str, Any] = field(default_factory=dict)
    status: str = "success"


class JobRequest(Protocol):
    """A job's validated request (a pydantic model): every one has an optional as_of."""

    @property
    def as_of(self) -> dt.datetime | None: ...

    def model_dump(self, *, mode: str, exclude_none: bool) -> dict[str, Any]: ...


def run_job(
    function: str,
    request: JobRequest,
    services: Services,
    body: Callable[[Run], Outcome],
    *,
    as_of: dt.datetime | None = None,
    params: Mapping[str, Any] | None = None,
    answer: type[RunAnswer] = RunAnswer,
    hold_warehouse: bool = True,
) -> dict[str, Any]:
    """Run `body` as one audited run of `function` and return the run's JSON answer,
    checked against `answer` (the job's model) before the run is recorded.

    as_of is the request's (now, floored to the hour, unless given; a job that needed it
    before the run passes the one it resolved); params are the request's fields plus
    `params`. Fields the body puts on `run.answer` before failing stay in the failed answer.
    The run holds one warehouse session unless `hold_warehouse` is off (a job that waits
    on the network or a fit holds its own around its reads and writes instead).
    """
    as_of = as_of or resolve_as_of(request.as_of)
    fields = request.model_dump(mode="json", exclude_none=True) | dict(params or {})
    held = services.warehouse.session() if hold_warehouse else contextlib.nullcontext()
    with held, track_run(services.warehouse, function, as_of, fields) as run:
        run.take(body(run))
        checked = answer.model_validate(run.result())  # an undeclared field fails the run
    return checked.model_dump(mode="json", exclude_unset=True)


def new_run_id(function: str, as_of: dt.datetime) -> str:
    """Readable and unique: function, as_of and a random suffix."""
    return f"{function}-{as_of.astimezone(UTC):%Y%m%dT%H%MZ}-{uuid.uuid4().hex[:8]}"


class AuditFailed(AircastError):
    """The run's row could not be appended to `runs` (becomes the run's failure; 500)."""


@contextlib.contextmanager
def track_run(
    warehouse: Warehouse, function: str, as_of: dt.datetime, params: dict[str, Any] | None = None
) -> Iterator[Run]:
    """Run a block as one audited run; an exception marks it failed and propagates."""
    run = Run(
        function=function,
        as_of=as_of,
        params=params or {},
        run_id=new_run_id(function, as_of),
        started_at=dt.datetime.now(UTC),
    )
    run.deadline_at = run.started_at + dt.timedelta(seconds=run_timeout(function))
    with log_context(run_id=run.run_id, function=function):
        event(log, "run started", as_of=iso(as_of), params=run.params)
        with contextlib.suppress(AuditFailed):  # logged; the outcome row is what must land
            _record(warehouse, run, finished=False)
        checkpoint("run:started")
        try:
            yield run
        except Exception as exc:
            caller = isinstance(exc, CallerError)
            run.status = "refused" if caller else "failed"
            run.error = f"{type(exc).__name__}: {exc}"
            if caller:
                event(log, "run refused", logging.WARNING, error=run.error)
            else:
                event(log, "run failed", logging.ERROR, error=run.error)
            with contextlib.suppress(AuditFailed):  # logged; the run's own error goes on
                _record(warehouse, run)
            if caller:  # the caller's to fix: answered as it is
                assert isinstance(exc, AircastError)
                exc.run_id = run.run_id
                raise
            if isinstance(exc, Retryable):  # ours, for now: the same request will likely work
                run.answer["retryable"] = True
            raise RunFailed(run.result()) from exc
        if run.status not in STATUSES:
            raise ValueError(f"unknown run status {run.status!r}")
        checkpoint("run:finishing")
        try:
            _record(warehouse, run)
        except AuditFailed as exc:
            run.status, run.error = "failed", str(exc)
            raise RunFailed(run.result()) from exc.__cause__
        event(log, "run finished", status=run.status, counts=run.counts)


def run_timeout(function: str) -> int:
    """Seconds after which an unfinished run of `function` counts as lost:
    AIRCAST_RUN_TIMEOUT_SECONDS, else the function's timeout (common.core.deploy)."""
    override: int | None = None
    with contextlib.suppress(ConfigError):
        override = get_settings().run_timeout_seconds
    return override or TIMEOUT_SECONDS.get(function, max(TIMEOUT_SECONDS.values()))


def _record(warehouse: Warehouse, run: Run, finished: bool = True) -> None:
    row = {
        "run_id": run.run_id,
        "function": run.function,
        "as_of": run.as_of,
        "status": run.status if finished else "running",
        "started_at": run.started_at,
        "finished_at": dt.datetime.now(UTC) if finished else None,
        "deadline_at": run.deadline_at,
        "counts": json.dumps(run.counts if finished else {}, sort_keys=True),
        "error": redact(run.error) if finished and run.error else None,
        "params": redact(json.dumps(run.params, sort_keys=True, default=str)),
    }
    try:
        warehouse.append("runs", pd.DataFrame([row]))
    except Exception as exc:
        error = f"could not record the run in `runs`: {type(exc).__name__}: {exc}"
        event(log, "could not record run", logging.ERROR, error=error, status=run.status)
        raise AuditFailed(error) from exc
