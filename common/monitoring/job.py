"""The monitor job: evaluate the pipeline's health at as_of and store it for the api.

Its own function on its own schedule, after predict: the status aggregates the whole
network (freshness, accuracy and drift over every location), which no predict shard should
pay for or fail on, and a pipeline whose predict stopped still gets a status saying so.
Idempotent: a re-run at the same as_of stores the same evaluation again; an older as_of
never replaces a newer status (`status.publish`).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from common.core.timeutil import UTCDateTime
from common.monitoring import status
from common.monitoring.health import STATES, State
from common.runtime.runs import Outcome, Run, RunAnswer, run_job
from common.runtime.services import Services


class MonitorAnswer(RunAnswer):
    """The monitor function's answer: the run's fields, the overall health, each
    condition's state, whether the status was stored (not when a newer one is) and the
    seconds the evaluation took."""

    health: State | None = None
    conditions: dict[str, State] | None = None
    stored: bool | None = None
    seconds: float | None = None


class MonitorRequest(BaseModel):
    """Body of a POST to the monitor function (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    as_of: UTCDateTime | None = None


def run_monitor(request: MonitorRequest, services: Services) -> dict[str, Any]:
    """Evaluate every health condition at as_of (each logged for the alerts) and store them."""
    return run_job(
        "monitor", request, services, lambda run: _monitor(services, run), answer=MonitorAnswer
    )


def _monitor(services: Services, run: Run) -> Outcome:
    t = time.perf_counter()
    health = status.evaluate(services, run.as_of)
    stored = status.publish(services, health)
    states = health.states()
    counts: dict[str, int] = {s: sum(1 for v in states.values() if v == s) for s in STATES}
    answer = {
        "health": health.status,
        "conditions": states,
        "stored": stored,
        "seconds": round(time.perf_counter() - t, 3),
    }
    return Outcome(counts=counts, answer=answer, status="success")
