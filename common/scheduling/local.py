"""The local Cloud Scheduler: fires `common.scheduling.schedules` at the functions, on a real clock
(`aircast scheduler`) or a simulated one (`aircast replay`).

Like Cloud Scheduler it POSTs each job's JSON body to its function, retries a 5xx or a
dropped connection with exponential backoff up to the job's retry count, and never
overlaps two runs of the same job. On the simulated clock every run carries the `as_of`
of its scheduled fire time, so a month of hourly operation replays in minutes.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from common.core.errors import BadGateway
from common.core.logs import event, get_logger
from common.core.timeutil import UTC, iso
from common.scheduling.schedules import SCHEDULES, Schedule
from common.scheduling.stack import function_source

log = get_logger("scheduler")


@dataclass
class Attempt:
    """The outcome of one scheduled run (after its retries)."""

    schedule: str
    function: str
    as_of: dt.datetime | None
    status_code: int | None  # None: no answer at all (connection refused, timeout)
    answer: dict[str, Any]
    attempts: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Invoker(Protocol):
    def __call__(self, schedule: Schedule, body: dict[str, Any]) -> tuple[int | None, dict, int]:
        """POST `body` to the schedule's function; return (status, JSON answer, attempts)."""


class HttpInvoker:
    """Calls served functions over HTTP, retrying 5xx and connection errors."""

    def __init__(self, urls: Mapping[str, str], backoff: float = 5.0) -> None:
        self.urls = dict(urls)
        self.backoff = backoff

    def _session(self, schedule: Schedule) -> requests.Session:
        retry = Retry(
            total=schedule.retry_count,
            connect=schedule.retry_count,
            read=0,  # a timed-out run may still be working: like Cloud Scheduler, don't pile on
            status_forcelist=range(500, 600),
            allowed_methods={"POST"},
            backoff_factor=self.backoff,
            backoff_max=3600,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        session = requests.Session()
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        return session

    def __call__(self, schedule: Schedule, body: dict[str, Any]) -> tuple[int | None, dict, int]:
        url = self.urls.get(schedule.function)
        if url is None:
            raise KeyError(f"no endpoint for function {schedule.function!r}")
        with self._session(schedule) as session:
            try:
                resp = session.post(url, json=body, timeout=schedule.deadline_s)
            except requests.RequestException as exc:
                return None, {"error": f"{type(exc).__name__}: {exc}"}, schedule.retry_count + 1
        history = resp.raw.retries.history if resp.raw is not None and resp.raw.retries else ()
        try:
            answer = resp.json()
        except ValueError:
            answer = {"error": resp.text[:500]}
        return (
            resp.status_code,
            answer if isinstance(answer, dict) else {"answer": answer},
            len(history) + 1,
        )


class InProcessInvoker:
    """Calls each function's entry point in this process with a real Flask request.

    The same code path as HTTP without a server in between: what `aircast replay` uses
    when no functions are being served.
    """

    def __init__(self) -> None:
        self._modules: dict[str, ModuleType] = {}

    def _entry(self, function: str) -> Callable[..., Any]:
        if function not in self._modules:
            source = function_source(function)
            spec = importlib.util.spec_from_file_location(f"aircast_function_{function}", source)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._modules[function] = module
        return getattr(self._modules[function], function)

    def __call__(self, schedule: Schedule, body: dict[str, Any]) -> tuple[int | None, dict, int]:
        import flask

        entry = self._entry(schedule.function)
        app = flask.Flask(f"aircast-{schedule.function}")
        attempts = 0
        while True:
            attempts += 1
            with app.test_request_context("/", method="POST", json=body):
                resp = app.make_response(entry(flask.request))
            status, answer = resp.status_code, resp.get_json(silent=True) or {}
            if status < 500 or attempts > schedule.retry_count:
                return status, answer, attempts


def fire(
    invoker: Invoker, schedule: Schedule, body: dict[str, Any], as_of: dt.datetime | None = None
) -> Attempt:
    """Run one scheduled job now and log the outcome."""
    started = time.monotonic()
    status, answer, attempts = invoker(schedule, body)
    attempt = Attempt(
        schedule.name,
        schedule.function,
        as_of,
        status,
        answer,
        attempts,
        time.monotonic() - started,
    )
    level = logging.INFO if attempt.ok else logging.WARNING
    event(
        log,
        "job fired",
        level,
        job=schedule.name,
        status_code=status,
        run_status=answer.get("status"),
        run_id=answer.get("run_id"),
        attempts=attempts,
        seconds=round(attempt.seconds, 3),
        **({"as_of": iso(as_of)} if as_of else {}),
    )
    return attempt


class Scheduler:
    """Fires every schedule on the real clock; one thread per job, so runs never overlap."""

    def __init__(
        self,
        invoker: Invoker,
        schedules: Iterable[Schedule] = SCHEDULES,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
    ) -> None:
        self.invoker = invoker
        self.schedules = tuple(schedules)
        self.now = now
        self.stopped = threading.Event()
        self.history: list[Attempt] = []
        self._lock = threading.Lock()

    def _loop(self, schedule: Schedule) -> None:
        last: dt.datetime | None = None
        while not self.stopped.is_set():
            now = self.now()
            if last is not None:  # each fire time once, even if the run ended within its second
                now = max(now, last + dt.timedelta(seconds=1))
            nxt = next(schedule.fire_times(now, now + dt.timedelta(days=400)))
            if self.stopped.wait(max(0.0, (nxt - self.now()).total_seconds())):
                return
            last = nxt
            attempt = fire(self.invoker, schedule, dict(schedule.body))
            with self._lock:
                self.history.append(attempt)

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._loop, args=(s,), name=s.name, daemon=True)
            for s in self.schedules
        ]
        for t in threads:
            t.start()
        return threads

    def stop(self) -> None:
        self.stopped.set()


@dataclass
class ReplaySummary:
    start: dt.datetime
    end: dt.datetime
    attempts: list[Attempt] = field(default_factory=list)
    seconds: float = 0.0

    def by_function(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for a in self.attempts:
            row = out.setdefault(a.function, {"runs": 0, "ok": 0, "failed": 0})
            row["runs"] += 1
            row["ok" if a.ok else "failed"] += 1
        return out

    @property
    def failures(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.ok]


WARMUP_CHUNK = dt.timedelta(days=90)


class ReplayError(BadGateway):
    """The replay cannot go on: a function its warm-up called failed (502)."""


def warmup_runs(start: dt.datetime, warmup: dt.timedelta | None) -> int:
    """How many runs the warm-up makes: its ingest chunks and one train."""
    if not warmup:
        return 0
    return -(-(Schedule.as_of(start) - Schedule.as_of(start - warmup)) // WARMUP_CHUNK) + 1


def replay_plan(
    start: dt.datetime, end: dt.datetime, schedules: Iterable[Schedule] = SCHEDULES
) -> list[tuple[dt.datetime, Schedule]]:
    """Every scheduled fire in [start, end], in time order (ties in schedule order)."""
    schedules = tuple(schedules)
    order = {s.name: i for i, s in enumerate(schedules)}
    plan = [(t, s) for s in schedules for t in s.fire_times(start, end)]
    return sorted(plan, key=lambda p: (p[0], order[p[1].name]))


def replay(
    invoker: Invoker,
    start: dt.datetime,
    end: dt.datetime,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    warmup: dt.timedelta | None = None,
    schedules: Iterable[Schedule] = SCHEDULES,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> ReplaySummary:
    """Run the schedules over [start, end] on a simulated clock.

    `overrides` adds fields to a function's body (e.g. {"ingest": {"source": "csv"}}).
    `warmup` first backfills that much history before `start` and trains once, so the
    first scheduled predict has a model, as a deployment that has been running would.
    """
    overrides = overrides or {}
    schedules = tuple(schedules)
    summary = ReplaySummary(start, end)
    began = time.monotonic()

    def run(schedule: Schedule, as_of: dt.datetime, extra: Mapping[str, Any] | None = None) -> None:
        body = {**schedule.body, **overrides.get(schedule.function, {}), **(extra or {})}
        body["as_of"] = iso(as_of)
        attempt = fire(invoker, schedule, body, as_of)
        summary.attempts.append(attempt)
        if on_attempt:
            on_attempt(attempt)

    if warmup:
        # The first schedule of each function (the daily train, not the weekly tune).
        by_function = {s.function: s for s in reversed(schedules)}
        cut = Schedule.as_of(start)
        a = Schedule.as_of(start - warmup)
        while a < cut:  # in chunks, as `aircast backfill` does: one request stays bounded
            b = min(a + WARMUP_CHUNK, cut)
            run(by_function["ingest"], cut, {"start": iso(a), "end": iso(b)})
            a = b
        run(by_function["train"], cut)
        if summary.failures:  # replaying without history or a model would only fail on
            first = summary.failures[0]
            raise ReplayError(
                f"warm-up {first.function} failed (HTTP {first.status_code}): "
                f"{first.answer.get('error', first.answer)}"
            )
    for fire_time, schedule in replay_plan(start, end, schedules):
        run(schedule, Schedule.as_of(fire_time))
    summary.seconds = time.monotonic() - began
    return summary


def endpoints_from_args(pairs: Iterable[str], home: Path) -> dict[str, str]:
    """NAME=URL pairs, else the endpoints `aircast serve` recorded under AIRCAST_HOME."""
    from common.scheduling.stack import read_endpoints

    pairs = list(pairs)
    if not pairs:
        return read_endpoints(home)
    out = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise ValueError(f"--endpoint takes NAME=URL, got {pair!r}")
        out[name] = url
    return out
