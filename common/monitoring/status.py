"""One status for people, machines and alerts: seven conditions, each ok | warn | alert.

`evaluate(services, as_of)` computes every condition live from the warehouse and the
store, logs one structured line per condition (message "health condition", fields
`condition`, `state`, `value`, `warn`, `alert`: what Terraform's log-based metrics read)
and returns `{"status", "as_of", "conditions": [{"name", "state", "detail", "value",
...}]}`. `publish` stores it at health/status.json for the api, which never opens the
warehouse. A condition that cannot be computed (a table or object unreadable) is an
`alert` naming the error, never a crash: a monitor must still report. The conditions
themselves are in `common.monitoring.conditions`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

from common.core.logs import event, get_logger
from common.core.timeutil import in_future, iso, parse_time
from common.monitoring import STATUS_KEY
from common.monitoring.conditions import (
    accuracy,
    build_condition,
    drift_condition,
    every_target,
    freshness,
    model_age,
    rejected_share,
    runs,
    snapshot,
    worst,
)
from common.runtime.services import Services
from common.storage.base import NotFound, PreconditionFailed

log = get_logger("health")

CONDITIONS = (
    "freshness",
    "runs",
    "model_age",
    "rejected_share",
    "accuracy",
    "drift",
    "snapshot",
)


CHECKS: dict[str, Callable[[Services, dt.datetime], dict[str, Any]]] = {
    "freshness": freshness,
    "runs": runs,
    "model_age": every_target("model_age", model_age),
    "rejected_share": rejected_share,
    "accuracy": accuracy,
    "drift": every_target("drift", drift_condition),
    "snapshot": every_target("snapshot", snapshot),
}


def evaluate(services: Services, as_of: dt.datetime) -> dict[str, Any]:
    """Every condition at as_of, each logged as one structured line."""
    conditions = []
    for name in CONDITIONS:
        try:
            condition = CHECKS[name](services, as_of)
        except Exception as exc:  # the monitor reports what it cannot read
            error = f"{type(exc).__name__}: {exc}"
            condition = build_condition(name, None, f"could not evaluate: {error}", state="alert")
        conditions.append(condition)
        event(
            log,
            "health condition",
            logging.WARNING if condition["state"] != "ok" else logging.INFO,
            condition=name,
            state=condition["state"],
            value=condition["value"],
            warn=condition["warn"],
            alert=condition["alert"],
            detail=condition["detail"],
            as_of=iso(as_of),
        )
    status = worst([c["state"] for c in conditions])
    return {"status": status, "as_of": iso(as_of), "conditions": conditions}


def publish(services: Services, status: dict[str, Any]) -> bool:
    """Store the status for the api; never replaces one for a later as_of (a backfill
    predict must not hide today's status), unless that one is dated after now. True when
    written."""
    store = services.store
    for _ in range(3):
        try:
            current, generation = store.get_with_generation(STATUS_KEY)
        except NotFound:
            current, generation = None, 0
        held = None if current is None else str(json.loads(current)["as_of"])
        # Both are iso() strings in UTC: they sort as the times do. One dated after now
        # (a clock gone wrong) is no newer status: replaced, so it cannot freeze the status.
        if held is not None and held > status["as_of"] and not in_future(parse_time(held)):
            return False
        try:
            store.put_json_if_generation(STATUS_KEY, status, generation)
            return True
        except PreconditionFailed:
            continue
    return False
