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

from common.core.timeutil import UTC, floor_hour

TIME_ZONE = "Etc/UTC"


@dataclass(frozen=True)
class Schedule:
    name: str  # Cloud Scheduler job name
    function: str  # functions/<function>/main.py, entry point <function>
    cron: str
    description: str
    body: dict[str, Any] = field(default_factory=dict)  # JSON POSTed to the function
    retry_count: int = 3  # Cloud Scheduler retries on a non-2xx answer
    attempt_deadline_s: int = 600  # Cloud Scheduler allows 15 s .. 30 min
    sharded: bool = False  # one job per predict shard (AIRCAST_PREDICT_SHARDS / var.predict_shards)

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
        attempt_deadline_s=1800,
    ),
    Schedule(
        "aircast-train-tune-weekly",
        "train",
        "10 2 * * 0",
        "Weekly bounded parameter search on folds before the holdout, then retrain with it.",
        body={"tune": True},
        retry_count=0,
        attempt_deadline_s=1800,
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
        if not 15 <= s.attempt_deadline_s <= 1800 or not 0 <= s.retry_count <= 5:
            raise ValueError(
                f"schedule {s.name}: deadline or retries outside Cloud Scheduler limits"
            )


def terraform_schedules() -> list[dict[str, Any]]:
    """The schedules as Terraform reads them (the schedules.json `make generate` writes)."""
    validate()
    return [{**asdict(s), "time_zone": TIME_ZONE} for s in SCHEDULES]
