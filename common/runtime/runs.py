"""The run audit: every function run appends exactly one `runs` row and logs its events.

`track_run` gives a run its id, puts run_id/function on every log line, and records the
outcome (success, partial, rejected or failed, with counts and the error) when it ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from common.core.errors import AircastError, RunFailed
from common.core.logs import event, get_logger, log_context
from common.core.timeutil import UTC, iso
from common.warehouse import Warehouse

log = get_logger("runs")

STATUSES = ("success", "partial", "rejected", "failed")


@dataclass
class Run:
    function: str
    as_of: dt.datetime
    params: dict[str, Any]
    run_id: str
    started_at: dt.datetime
    status: str = "success"
    counts: dict[str, int] = field(default_factory=dict)
    answer: dict[str, Any] = field(default_factory=dict)  # extra fields of the response
    error: str | None = None

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
        return out


def new_run_id(function: str, as_of: dt.datetime) -> str:
    """Readable and unique: function, as_of and a random suffix."""
    return f"{function}-{as_of.astimezone(UTC):%Y%m%dT%H%MZ}-{uuid.uuid4().hex[:8]}"


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
    with log_context(run_id=run.run_id, function=function):
        event(log, "run started", as_of=iso(as_of), params=run.params)
        try:
            yield run
        except Exception as exc:
            run.status = "failed"
            run.error = f"{type(exc).__name__}: {exc}"
            event(log, "run failed", logging.ERROR, error=run.error)
            _record(warehouse, run)
            if isinstance(exc, AircastError) and exc.status < 500:  # the caller's to fix
                exc.run_id = run.run_id
                raise
            raise RunFailed(run.result()) from exc
        if run.status not in STATUSES:
            raise ValueError(f"unknown run status {run.status!r}")
        _record(warehouse, run)
        event(log, "run finished", status=run.status, counts=run.counts)


def _record(warehouse: Warehouse, run: Run) -> None:
    row = {
        "run_id": run.run_id,
        "function": run.function,
        "as_of": run.as_of,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": dt.datetime.now(UTC),
        "counts": json.dumps(run.counts, sort_keys=True),
        "error": run.error,
        "params": json.dumps(run.params, sort_keys=True, default=str),
    }
    try:
        warehouse.append("runs", pd.DataFrame([row]))
    except Exception as exc:  # never mask the run's own outcome
        event(log, "could not record run", logging.ERROR, error=str(exc))
