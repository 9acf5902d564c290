"""The one schedule definition: Terraform's Cloud Scheduler jobs and the local scheduler
(`aircast scheduler`, `aircast replay`) both read it.

Cron is unix-cron in UTC, as Cloud Scheduler takes it. A job fired at 10:05 runs with
as_of 10:00 (its fire time floored to the hour), so ingest, predict and train fired within
one hour all see the same cut-off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from croniter import croniter

from common.core.deploy import TIMEOUT_SECONDS
from common.core.timeutil import UTC, floor_hour

TIME_ZONE = "Etc/UTC"
# Cloud Scheduler's attempt deadline for HTTP targets: 15 s .. 30 min (the Job resource's
# attemptDeadline). Past it the attempt counts as failed and is retried while the function,
# still inside its own timeout, may go on running: so a job's deadline is its function's
# timeout wherever the limit allows (train: 30 min both).
MIN_ATTEMPT_DEADLINE_S, MAX_ATTEMPT_DEADLINE_S = 15, 1800


@dataclass(frozen=True)
class Schedule:
    name: str  # Cloud Scheduler job name
    function: str  # functions/<function>/main.py, entry point <function>
    cron: str
    description: str
    body: dict[str, Any] = field(default_factory=dict)  # JSON POSTed to the function
    retry_count: int = 3  # Cloud Scheduler retries on a non-2xx answer
    attempt_deadline_s: int | None = None  # None: the function's timeout (`deadline_s`)
    sharded: bool = False  # one job per predict shard (AIRCAST_PREDICT_SHARDS / var.predict_shards)

    @property
    def deadline_s(self) -> int:
        """How long Cloud Scheduler (and the local scheduler) waits for an attempt: the
        function's request timeout (common.core.deploy), within Cloud Scheduler's limits."""
        if self.attempt_deadline_s is not None:
            return self.attempt_deadline_s
        timeout = TIMEOUT_SECONDS[self.function]
        return max(MIN_ATTEMPT_DEADLINE_S, min(MAX_ATTEMPT_DEADLINE_S, timeout))

    def fire_times(self, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
        """Fire times in [start, end], UTC."""
        it = croniter(self.cron, start.astimezone(UTC) - dt.timedelta(seconds=1))
        while (t := it.get_next(dt.datetime)) <= end:
            yield t.astimezone(UTC)

    @staticmethod
    def as_of(fire_time: dt.datetime) -> dt.datetime:
        return floor_hour(fire_time.astimezone(UTC))


SCHEDULES: tuple[Schedule, ...] = (
    Schedule(
        "aircast-ingest-hourly",
        "ingest",
        "5 * * * *",
        "Pull the latest hours (with overlap for late data) from the configured source.",
    ),
    Schedule(
        "aircast-predict-hourly",
        "predict",
        "20 * * * *",
        "Forecast every active location with the production model; refresh the snapshot.",
        sharded=True,
    ),
    Schedule(
        "aircast-monitor-hourly",
        "monitor",
        "35 * * * *",
        "Evaluate the pipeline's health (freshness, runs, model, accuracy, drift, snapshot); "
        "log each condition for the alerts and store the status for the api.",
    ),
    Schedule(
        "aircast-train-daily",
        "train",
        "40 3 * * *",
        "Retrain on the training window; promote only if the gate passes.",
        retry_count=1,
    ),
    Schedule(
        "aircast-train-tune-weekly",
        "train",
        "10 2 * * 0",
        "Weekly bounded parameter search on folds before the holdout, then retrain with it.",
        body={"tune": True},
        retry_count=0,
    ),
)

FUNCTIONS = ("ingest", "train", "predict", "monitor", "api")


def expand(schedules: tuple[Schedule, ...], shards: int) -> tuple[Schedule, ...]:
    """The jobs a deployment with `shards` predict shards runs: a sharded schedule becomes
    one job per shard, `<name>-shard-<k>` with {"shard": k, "shards": N} in its body, all at
    the same time and each retried alone (terraform/scheduler.tf expands it the same way)."""
    if shards <= 1:
        return schedules
    out: list[Schedule] = []
    for s in schedules:
        if not s.sharded:
            out.append(s)
            continue
        for k in range(shards):
            body = {**s.body, "shard": k, "shards": shards}
            name = f"{s.name}-shard-{k}"
            out.append(replace(s, name=name, body=body, description=f"{s.description} Shard {k}."))
    return tuple(out)


def validate() -> None:
    """Every schedule targets a known function with a valid cron expression."""
    for s in SCHEDULES:
        if s.function not in FUNCTIONS:
            raise ValueError(f"schedule {s.name} targets unknown function {s.function}")
        if not croniter.is_valid(s.cron):
            raise ValueError(f"schedule {s.name} has invalid cron {s.cron!r}")
        deadline = s.deadline_s
        if not MIN_ATTEMPT_DEADLINE_S <= deadline <= MAX_ATTEMPT_DEADLINE_S:
            raise ValueError(f"schedule {s.name}: deadline outside Cloud Scheduler limits")
        if not 0 <= s.retry_count <= 5:
            raise ValueError(f"schedule {s.name}: retries outside Cloud Scheduler limits")
        if deadline < min(TIMEOUT_SECONDS[s.function], MAX_ATTEMPT_DEADLINE_S):
            raise ValueError(
                f"schedule {s.name}: a {deadline} s deadline would retry a {s.function} run "
                f"still inside its {TIMEOUT_SECONDS[s.function]} s timeout"
            )


def terraform_schedules() -> list[dict[str, Any]]:
    """The schedules as Terraform reads them (the schedules.json `make generate` writes)."""
    validate()
    return [
        {**asdict(s), "attempt_deadline_s": s.deadline_s, "time_zone": TIME_ZONE} for s in SCHEDULES
    ]
