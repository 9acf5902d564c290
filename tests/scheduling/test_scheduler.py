"""The local scheduler: same schedules as Terraform, HTTP like Cloud Scheduler, replay."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from pathlib import Path

import pytest

from common.scheduling.local import HttpInvoker, Scheduler, fire, replay, replay_plan
from common.scheduling.schedules import SCHEDULES, Schedule, expand
from common.scheduling.stack import free_port, start_function, stop

FLAKY = Path(__file__).parents[1] / "fixture_functions" / "flaky" / "main.py"
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


@pytest.fixture
def flaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = tmp_path / "calls.jsonl"
    served = start_function(
        "flaky", free_port(), env={"FLAKY_LOG": str(calls)}, log_dir=tmp_path, source=FLAKY
    )
    yield served.url, calls
    stop([served])


def job(name: str = "flaky-job", cron: str = "5 * * * *", retries: int = 3) -> Schedule:
    return Schedule(name, "flaky", cron, "test job", retry_count=retries, attempt_deadline_s=30)


def read_calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_replay_plan_runs_every_job_at_its_scheduled_time_in_order():
    plan = replay_plan(T0, T0 + dt.timedelta(days=2) - dt.timedelta(minutes=1))
    functions = ("ingest", "predict", "monitor", "train")
    counts = {f: sum(1 for _, s in plan if s.function == f) for f in functions}
    assert counts == {"ingest": 48, "predict": 48, "monitor": 48, "train": 2}
    times = [t for t, _ in plan]
    assert times == sorted(times)
    first_hour = [s.function for t, s in plan if t < T0 + dt.timedelta(hours=1)]
    # :05, :20, :35: predict sees the new data, the monitor sees predict's forecasts
    assert first_hour == ["ingest", "predict", "monitor"]
    assert all(Schedule.as_of(t) == t.replace(minute=0) for t, _ in plan)


def test_a_5xx_is_retried_with_backoff_and_a_4xx_is_not(flaky):
    url, calls = flaky
    invoker = HttpInvoker({"flaky": url}, backoff=0.01)
    attempt = fire(invoker, job(), {"as_of": "2024-03-01T00:00:00Z"})
    assert attempt.ok and attempt.attempts == 2 and attempt.answer["status"] == "success"
    attempt = fire(invoker, job(), {"as_of": "2024-03-01T01:00:00Z", "bad": True})
    assert attempt.status_code == 400 and attempt.attempts == 1
    assert len(read_calls(calls)) == 3


def test_retries_stop_at_the_jobs_retry_count(flaky):
    url, _ = flaky
    attempt = fire(HttpInvoker({"flaky": url}, backoff=0.01), job(retries=0), {"as_of": "x"})
    assert attempt.status_code == 500 and attempt.attempts == 1 and not attempt.ok


def test_no_answer_is_a_failed_attempt():
    invoker = HttpInvoker({"flaky": f"http://127.0.0.1:{free_port()}"}, backoff=0.01)
    attempt = fire(invoker, job(retries=1), {})
    assert (
        attempt.status_code is None and not attempt.ok and "Connection" in attempt.answer["error"]
    )


def test_replay_fires_each_run_with_its_as_of(flaky):
    url, calls = flaky
    jobs = (job("a", "5 * * * *", retries=2), job("b", "20 */6 * * *", retries=2))
    summary = replay(
        HttpInvoker({"flaky": url}, backoff=0.01),
        T0,
        T0 + dt.timedelta(hours=12) - dt.timedelta(minutes=1),
        overrides={"flaky": {"source": "synthetic"}},
        schedules=jobs,
    )
    assert len(summary.attempts) == 12 + 2 and not summary.failures
    as_ofs = [c["as_of"] for c in read_calls(calls)]
    assert as_ofs[:3] == ["2024-03-01T00:00:00Z"] * 3  # a then b at 00:xx, a retried once
    assert all(c["source"] == "synthetic" for c in read_calls(calls))
    assert summary.by_function() == {"flaky": {"runs": 14, "ok": 14, "failed": 0}}


def test_the_scheduler_fires_on_the_clock(flaky):
    url, calls = flaky
    real = dt.datetime.now(dt.UTC)
    next_minute = real.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    offset = next_minute - real - dt.timedelta(seconds=0.5)  # first fire due in 0.5 s

    scheduler = Scheduler(
        HttpInvoker({"flaky": url}, backoff=0.01),
        [job("every-minute", "* * * * *", retries=1)],
        now=lambda: dt.datetime.now(dt.UTC) + offset,
    )
    scheduler.start()
    try:
        scheduler.stopped.wait(3)  # the first fire is due after 0.5 s, the next after 60 s
    finally:
        scheduler.stop()
    assert len(scheduler.history) == 1
    assert scheduler.history[0].attempts == 2  # the body has no as_of: 500, then 200
    assert read_calls(calls) == [{}, {}]


def test_terraform_and_the_local_scheduler_read_the_same_schedules():
    generated = json.loads((Path(__file__).parents[2] / "terraform" / "schedules.json").read_text())
    assert [g["cron"] for g in generated] == [s.cron for s in SCHEDULES]
    # the deadline the local scheduler waits for (`deadline_s`) is the one Terraform sets
    assert [{k: v for k, v in g.items() if k != "time_zone"} for g in generated] == [
        {**dataclasses.asdict(s), "attempt_deadline_s": s.deadline_s} for s in SCHEDULES
    ]


class Recorder:
    """An invoker that answers like the functions would and records each body."""

    def __init__(self, fail_function: str | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail_function = fail_function

    def __call__(self, schedule: Schedule, body: dict) -> tuple[int | None, dict, int]:
        self.calls.append((schedule.function, dict(body)))
        if schedule.function == self.fail_function:
            return 400, {"error": "start: window longer than 400 days", "field": "start"}, 1
        return 200, {"status": "success"}, 1


def test_replay_warm_up_backfills_in_chunks_then_trains_once():
    rec = Recorder()
    summary = replay(rec, T0, T0 + dt.timedelta(hours=2), warmup=dt.timedelta(days=1095))
    warm = rec.calls[: 13 + 1]
    ingests = [b for f, b in warm if f == "ingest"]
    assert len(ingests) == 13 and warm[-1][0] == "train"  # ceil(1095 / 90) chunks
    first = (T0 - dt.timedelta(days=1095)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ingests[0]["start"] == first and ingests[-1]["end"] == "2024-03-01T00:00:00Z"
    spans = [(b["start"], b["end"]) for b in ingests]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # contiguous
    assert all(b["as_of"] == "2024-03-01T00:00:00Z" for b in ingests)
    assert not summary.failures


def test_a_failed_warm_up_stops_the_replay_with_its_error():
    from common.scheduling.local import ReplayError

    rec = Recorder(fail_function="ingest")
    with pytest.raises(ReplayError, match="window longer than 400 days"):
        replay(rec, T0, T0 + dt.timedelta(days=2), warmup=dt.timedelta(days=30))
    assert [f for f, _ in rec.calls] == ["ingest", "train"]  # nothing scheduled ran


def test_a_sharded_schedule_becomes_one_job_per_shard():
    assert expand(SCHEDULES, 1) == SCHEDULES
    jobs = expand(SCHEDULES, 3)
    predict = [s for s in jobs if s.function == "predict"]
    assert [s.name for s in predict] == [f"aircast-predict-hourly-shard-{k}" for k in range(3)]
    assert [s.body for s in predict] == [{"shard": k, "shards": 3} for k in range(3)]
    assert {s.cron for s in predict} == {"20 * * * *"}  # side by side, each retried alone
    others = [s for s in SCHEDULES if not s.sharded]
    assert [s for s in jobs if s.function != "predict"] == others
    assert [s.function for s in SCHEDULES if s.sharded] == ["predict"]
