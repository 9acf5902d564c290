"""One status for people, machines and alerts: seven conditions, each ok | warn | alert.

`evaluate(services, as_of)` computes every condition live from the warehouse and the
store, logs one structured line per condition (message "health condition", fields
`condition`, `state`, `value`, `warn`, `alert`: what Terraform's log-based metrics read)
and returns a `common.monitoring.health.PipelineStatus`: `{"status", "as_of",
"conditions": [{"name", "state", "detail", "value", ...}]}`. `publish` stores it at
health/status.json for the api, which never opens the warehouse. A condition that cannot
be computed (a table or object unreadable) is an `alert` naming the error (and its
traceback logged), never a crash: a monitor must still report. The conditions themselves
are in `common.monitoring.conditions`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable

from common.core.logs import event, get_logger
from common.core.timeutil import in_future, iso, parse_time
from common.monitoring import STATUS_KEY
from common.monitoring.accuracy_condition import accuracy
from common.monitoring.conditions import (
    build_condition,
    every_target,
    freshness,
    model_age,
    rejected_share,
    runs,
    snapshot,
)
from common.monitoring.drift_condition import drift_condition
from common.monitoring.health import HealthCondition, PipelineStatus, worst
from common.runtime.services import Services

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


CHECKS: dict[str, Callable[[Services, dt.datetime], HealthCondition]] = {
    "freshness": freshness,
    "runs": runs,
    "model_age": every_target("model_age", model_age),
    "rejected_share": rejected_share,
    "accuracy": accuracy,
    "drift": every_target("drift", drift_condition),
    "snapshot": every_target("snapshot", snapshot),
}


def evaluate(services: Services, as_of: dt.datetime) -> PipelineStatus:
    """Every condition at as_of, each logged as one structured line."""
    conditions: list[HealthCondition] = []
    for name in CONDITIONS:
        try:
            condition = CHECKS[name](services, as_of)
        except Exception as exc:  # the monitor reports what it cannot read (and logs why)
            log.warning("could not evaluate %s", name, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"
            condition = build_condition(name, None, f"could not evaluate: {error}", state="alert")
        conditions.append(condition)
        event(
            log,
            "health condition",
            logging.WARNING if condition.state != "ok" else logging.INFO,
            condition=name,
            state=condition.state,
            value=condition.value,
            warn=condition.warn,
            alert=condition.alert,
            detail=condition.detail,
            as_of=iso(as_of),
        )
    status = worst([c.state for c in conditions])
    return PipelineStatus(status=status, as_of=as_of, conditions=conditions)


def publish(services: Services, status: PipelineStatus) -> bool:
    """Store the status for the api unless one for a later as_of is stored (a backfill
    must not hide today's status): the store's `put_if_newer`, so an unreadable status is
    replaced (and logged) and losing the race 3 times is a retryable Contention. True when
    written."""
    body = json.dumps(status.to_json(), indent=2, sort_keys=True).encode()
    put = services.store.put_if_newer(STATUS_KEY, lambda _: body, status.as_of, stored_as_of)
    if put.replaced is not None:
        event(log, "replaced an unreadable status", logging.WARNING, error=put.replaced)
    return put.written


def stored_as_of(data: bytes) -> dt.datetime:
    """The as_of of a stored status (raises ValueError/KeyError when unreadable). One dated
    after now (a clock gone wrong) is no newer status: unreadable, so it is replaced and
    cannot freeze the status."""
    as_of = parse_time(json.loads(data)["as_of"])
    if in_future(as_of):
        raise ValueError(f"the stored status is dated after now ({iso(as_of)})")
    return as_of
