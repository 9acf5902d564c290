"""`aircast demo` (what `make demo` runs): the whole local serverless stack in one command.

1. create the warehouse tables and views (`aircast init`);
2. replay the schedules over the last `replay_hours` on a simulated clock, after a warm-up
   that backfills `days` of history from the default source and trains once, so the
   forecasts already have a measured accuracy when the dashboard opens;
3. serve the five functions with functions-framework on loopback (the api first, on
   `port`), and run the local Cloud Scheduler against them on the real clock;
4. check that the api answers, print what to open and what to run next;
5. keep serving until Ctrl-C, or stop at once when run non-interactively (CI=true or
   DEMO_SERVE=0), which is how CI proves `make demo` works.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import time
from collections.abc import Callable
from typing import Any

import click
import requests

from common.core.timeutil import iso, now_hour
from common.runtime.services import Services
from common.scheduling import stack as localstack
from common.scheduling.local import (
    HttpInvoker,
    InProcessInvoker,
    Scheduler,
    replay,
    replay_plan,
    warmup_runs,
)
from common.scheduling.schedules import Schedule

FUNCTIONS = ["api", "ingest", "train", "predict", "monitor"]  # the api takes the first port

# What the demo sets unless the environment already does (the served functions inherit it):
# several pollutants, so the dashboard's picker shows; weather forecasts as inputs, which the
# synthetic source issues as a live feed does; and a training budget sized to a few places
# and a month of history (one thread: on data this small, more threads only wait).
DEMO_SETTINGS = {
    "AIRCAST_TARGETS": "pm2_5,pm10,nitrogen_dioxide,ozone",
    "AIRCAST_FUTURE_WEATHER": "true",
    "AIRCAST_TRAIN_MAX_ROWS": "6000",
    "AIRCAST_TRAIN_BACKTEST_FOLDS": "0",
    "AIRCAST_TRAIN_HOLDOUT_DAYS": "3",
    "AIRCAST_TRAIN_THREADS": "1",
    "AIRCAST_TUNE_BUDGET_SECONDS": "20",
    "AIRCAST_TUNE_MAX_TRIALS": "3",
}


def demo_settings() -> dict[str, str]:
    """Apply DEMO_SETTINGS where the environment leaves them unset; return what was applied.
    The demo's event log is kept at INFO: it goes to files under the home, not the terminal."""
    from common.runtime import services

    applied = {k: v for k, v in DEMO_SETTINGS.items() if k not in os.environ}
    os.environ.update(applied)
    os.environ["AIRCAST_LOG_LEVEL"] = "INFO"
    services.reset()
    return applied


def should_serve() -> bool:
    """Serve until interrupted, unless told this is a non-interactive run."""
    if os.environ.get("DEMO_SERVE", "").strip().lower() in {"0", "false", "no"}:
        return False
    return os.environ.get("CI", "").strip().lower() not in {"1", "true", "yes"}


def run_demo(
    svc: Services,
    days: float,
    replay_hours: int,
    port: int,
    serve: bool,
    wait: Callable[[Callable[[], bool]], None],
) -> dict[str, Any]:
    """The schema, the history (backfill, train, replay), then the local stack serving it
    until `wait` returns (or at once unless `serve`); its urls and a forecast it answered."""
    began = time.monotonic()
    settings = svc.settings
    step("1/4 warehouse", f"{settings.backend} backend, home {settings.home}")
    svc.warehouse.ensure_schema()

    _history(svc, days, replay_hours)

    if port and localstack.port_open("127.0.0.1", port):
        click.echo(f"      port {port} is busy: using free ports instead")
        port = 0
    step("3/4 serve", "functions-framework on loopback, local Cloud Scheduler on the clock")
    with localstack.serve(FUNCTIONS, port, home=settings.home) as urls:
        for name, url in urls.items():
            click.echo(f"      {name:<8} {url}")
        scheduler = Scheduler(HttpInvoker(urls))
        scheduler.start()
        try:
            answer = check_api(urls["api"])
            step("4/4 ready", f"in {time.monotonic() - began:.0f}s")
            print_next_steps(urls["api"], answer)
            if serve:
                click.echo(f"Serving until Ctrl-C (logs in {settings.home / 'logs'}).")
                wait(lambda: True)
            else:
                click.echo("Non-interactive run (CI or DEMO_SERVE=0): stopping the stack.")
        finally:
            scheduler.stop()
    return {"urls": urls, "forecast": answer}


def _history(svc: Services, days: float, replay_hours: int) -> None:
    """Backfill `days`, train, then replay the last `replay_hours` of the schedules on a
    simulated clock, in process; a failed run stops the demo with its error."""
    end = dt.datetime.now(dt.UTC)  # every run already due, up to this minute
    start = now_hour() - dt.timedelta(hours=replay_hours - 1)
    total = len(replay_plan(start, end)) + warmup_runs(start, dt.timedelta(days=days))
    step(
        "2/4 history",
        f"backfill {days:g} days, train, then replay {iso(start)} .. {end:%Y-%m-%dT%H:%MZ} "
        f"({total} scheduled runs on a simulated clock)",
    )
    if svc.settings.future_weather:
        # Training reads the weather forecasts as they were issued: a source that can issue
        # its past forecasts again (synthetic) backfills them first, as `aircast backfill
        # --forecasts` does, so the model trains on the inputs predict will give it.
        backfill_forecasts(svc, start - dt.timedelta(days=days), start)
    with click.progressbar(length=total, label="      runs", show_pos=True) as bar:
        summary = replay(
            InProcessInvoker(),
            start,
            end,
            warmup=dt.timedelta(days=days),
            on_attempt=lambda _: bar.update(1),
        )
    for function, row in summary.by_function().items():
        click.echo(f"      {function:<8} {row['ok']}/{row['runs']} ok")
    if summary.failures:
        first = summary.failures[0]
        raise click.ClickException(
            f"{first.schedule} at {iso(first.as_of) if first.as_of else '-'} failed "
            f"(HTTP {first.status_code}): {first.answer.get('error', first.answer)}"
        )
    accuracy = svc.warehouse.query(
        "SELECT COUNT(*) AS n, AVG(abs_error) AS mae FROM forecast_accuracy "
        "WHERE issued_at >= @start",
        {"start": start},
    )
    if accuracy["n"][0]:
        click.echo(
            f"      forecast_accuracy: {accuracy['n'][0]} forecasts already verified, "
            f"MAE {accuracy['mae'][0]:.2f}"
        )


def backfill_forecasts(svc: Services, start: dt.datetime, end: dt.datetime) -> None:
    """The default source's past forecasts for [start, end], issued up to `end`."""
    from common.ingest.job import IngestRequest, run_ingest
    from common.sources import default_source, make_source

    if not make_source(default_source(svc.settings), svc.settings).keeps_past_forecasts:
        return
    cut = Schedule.as_of(end)
    run_ingest(IngestRequest(as_of=cut, start=Schedule.as_of(start), end=cut, forecasts=True), svc)


def check_api(url: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the api is healthy and answers a forecast; return that forecast."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            health = requests.get(f"{url}/health", timeout=10).json()
            locations = requests.get(f"{url}/v1/locations", timeout=10).json()["locations"]
            first = locations[0]["location_id"]
            r = requests.get(f"{url}/v1/forecasts/{first}", params={"hours": 3}, timeout=10)
            if health.get("status") == "ok" and r.status_code == 200:
                return r.json()
            problem = f"health {health}, forecast HTTP {r.status_code}"
        except (requests.RequestException, ValueError, KeyError, IndexError) as exc:
            problem = str(exc)
        if time.monotonic() > deadline:
            raise click.ClickException(f"the api at {url} did not answer a forecast: {problem}")
        time.sleep(0.5)


def print_next_steps(api: str, forecast: dict[str, Any]) -> None:
    loc = forecast["location_id"]
    p = forecast["points"][0]
    click.echo(
        f"\n{loc}: {forecast['target']} {p['yhat']:.1f} {forecast['unit']} at "
        f"{p['target_ts']} (80% interval {p['yhat_lower']:.1f} .. {p['yhat_upper']:.1f}), "
        f"model {forecast['model_version']}\n"
    )
    sql = (  # the newest issue's forecasts, rounded as people read them
        "SELECT location_id, target, target_ts, ROUND(yhat, 1) AS yhat, ROUND(yhat_lower, 1) "
        "AS p10, ROUND(yhat_upper, 1) AS p90 FROM latest_forecasts WHERE issued_at = "
        "(SELECT MAX(issued_at) FROM latest_forecasts) ORDER BY location_id, target, "
        "target_ts LIMIT 5"
    )
    click.echo("Open the dashboard:   " + f"{api}/")
    click.echo("A forecast by HTTP:   " + f"curl -s '{api}/v1/forecasts/{loc}?hours=6'")
    click.echo("SQL over forecasts:   " + f".venv/bin/aircast sql {shlex.quote(sql)}")
    click.echo(
        "Accuracy by horizon:  .venv/bin/aircast sql "
        + shlex.quote(
            "SELECT horizon_h, COUNT(*) AS n, ROUND(AVG(abs_error), 2) AS mae "
            "FROM forecast_accuracy GROUP BY horizon_h ORDER BY horizon_h"
        )
    )


def step(name: str, detail: str) -> None:
    click.secho(f"[{name}] ", bold=True, nl=False)
    click.echo(detail)
