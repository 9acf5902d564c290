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
from common.monitoring.conditions import STATES
from common.runtime.runs import Outcome, Run, run_job
from common.runtime.services import Services


class MonitorRequest(BaseModel):
    """Body of a POST to the monitor function (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    as_of: UTCDateTime | None = None


def run_monitor(request: MonitorRequest, services: Services) -> dict[str, Any]:
    """Evaluate every health condition at as_of (each logged for the alerts) and store them."""
    return run_job("monitor", request, services, lambda run: _monitor(services, run))


def _monitor(services: Services, run: Run) -> Outcome:
    t = time.perf_counter()
    health = status.evaluate(services, run.as_of)
    stored = status.publish(services, health)
    states = {c["name"]: c["state"] for c in health["conditions"]}
    counts = {state: sum(1 for s in states.values() if s == state) for state in STATES}
    answer = {
        "health": health["status"],
        "conditions": states,
        "stored": stored,
        "seconds": round(time.perf_counter() - t, 3),
    }
    return Outcome(counts=counts, answer=answer, status="success")
