"""Commands that run the deployment's moving parts: the functions served over HTTP, the
scheduler that fires them, a replay of past schedules, a deployed job run now, the demo."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import click

from common.core.timeutil import check_not_future, iso
from common.ops.cli.console import TIME, frame_to_text, route_logs, wait_for_interrupt
from common.runtime import services
from common.runtime.services import get_services
from common.scheduling.schedules import FUNCTIONS, SCHEDULES, expand
from common.sources import SOURCE_NAMES


@click.command()
@click.argument("functions", nargs=-1, type=click.Choice(FUNCTIONS))
@click.option("--port", default=8080, show_default=True, help="First port (one per function).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
def serve(functions: tuple[str, ...], port: int, host: str) -> None:
    """Serve functions over HTTP (default: the api on :8080).

    Each runs under functions-framework, as on Cloud Run.

    Functions take consecutive ports from --port; their URLs are recorded in
    $AIRCAST_HOME/endpoints.json for `aircast scheduler`. Logs go to $AIRCAST_HOME/logs/.
    """
    from common.scheduling import stack as localstack

    home = get_services().settings.home
    names = list(dict.fromkeys(functions)) or ["api"]
    with localstack.serve(names, port, host, home=home) as urls:
        for name, url in urls.items():
            click.echo(f"{name:<8} {url}")
        click.echo(f"logs in {home / 'logs'}; Ctrl-C to stop")
        wait_for_interrupt()


@click.command()
@click.option("--endpoint", "-e", multiple=True, metavar="NAME=URL", help="Function URL.")
@click.option("--run-now", multiple=True, type=click.Choice(FUNCTIONS), help="Fire once at start.")
@click.option("--backoff", default=5.0, show_default=True, help="Retry backoff factor, seconds.")
def scheduler(endpoint: tuple[str, ...], run_now: tuple[str, ...], backoff: float) -> None:
    """Fire the schedules at served functions, like Cloud Scheduler.

    Reads the same schedule definition as Terraform (common/scheduling/schedules.py; cron in
    UTC). Endpoints default to the ones `aircast serve` recorded.
    """
    from common.scheduling.local import HttpInvoker, Scheduler, fire

    urls = _endpoints(endpoint)
    invoker = HttpInvoker(urls, backoff)
    now = dt.datetime.now(dt.UTC)
    jobs = expand(SCHEDULES, get_services().settings.predict_shards)  # as Terraform does
    for s in jobs:
        nxt = next(s.fire_times(now, now + dt.timedelta(days=400)))
        click.echo(f"{s.name:<26} {s.cron:<12} -> {urls.get(s.function, '?')}  next {iso(nxt)}")
    for function in run_now:
        for schedule in [s for s in jobs if s.function == function][:1] or []:
            attempt = fire(invoker, schedule, dict(schedule.body))
            click.echo(
                f"{schedule.name}: HTTP {attempt.status_code} {attempt.answer.get('status')}"
            )
    runner = Scheduler(invoker, jobs)
    runner.start()
    click.echo("scheduler running; Ctrl-C to stop")
    wait_for_interrupt()
    runner.stop()


@click.command("run-job")
@click.argument("name")
@click.option("--region", help="Region of the job (default: AIRCAST_REGION).")
@click.option("--endpoint", hidden=True, help="Cloud Scheduler API endpoint (tests).")
def run_job(name: str, region: str | None, endpoint: str | None) -> None:
    """Run a deployed Cloud Scheduler job now (job or function name).

    Cloud Scheduler then calls the function as on schedule: same body, OIDC token and
    retries. Needs GOOGLE_CLOUD_PROJECT and credentials (gcloud auth application-default
    login); e.g. `aircast run-job aircast-ingest-hourly` or `aircast run-job ingest`.
    """
    from common.core.config import get_settings
    from common.scheduling.cloud import run_job as run_scheduler_job

    settings = get_settings()
    if not settings.project:
        raise click.ClickException("set GOOGLE_CLOUD_PROJECT to the project the job lives in")
    job = run_scheduler_job(settings.project, region or settings.region, name, endpoint)
    when = f"{job['schedule']} {job['time_zone']}"
    click.echo(f"{job['job']}: run requested ({job['state']}, {when})")
    click.echo(
        f'  target {job["target"]}; follow it with: aircast sql "SELECT * FROM run_status '
        'ORDER BY started_at DESC LIMIT 5"'
    )


@click.command()
@click.option("--start", "start", required=True, type=TIME, help="First simulated hour.")
@click.option("--end", "end", required=True, type=TIME, help="Last simulated hour.")
@click.option(
    "--source", type=click.Choice(SOURCE_NAMES), help="Ingest source (default: backend's default)."
)
@click.option("--path", type=click.Path(exists=True, file_okay=False), help="Folder for csv.")
@click.option("--warmup-days", default=14.0, show_default=True, help="History before --start.")
@click.option("--http", "over_http", is_flag=True, help="Call served functions over HTTP.")
@click.option("--endpoint", "-e", multiple=True, metavar="NAME=URL", help="Function URL.")
def replay(
    start: dt.datetime,
    end: dt.datetime,
    source: str | None,
    path: str | None,
    warmup_days: float,
    over_http: bool,
    endpoint: tuple[str, ...],
) -> None:
    """Replay the schedules over a past period on a simulated clock.

    Every ingest, predict and train runs at its scheduled as_of, so a month of operational
    history (and a filled forecast_accuracy) takes minutes. First backfills --warmup-days
    of history and trains once, as a running deployment would have.
    """
    from common.scheduling.local import HttpInvoker, InProcessInvoker, replay_plan, warmup_runs
    from common.scheduling.local import replay as run_replay

    if end <= start:
        raise click.BadParameter("--end must be after --start", param_hint="--end")
    try:  # each run is about a simulated past hour; none may lie after the real clock
        check_not_future(end)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--end") from None
    ingest: dict[str, Any] = {}
    if source:
        ingest["source"] = source
    if path:
        ingest["path"] = str(Path(path).resolve())
    http = over_http or bool(endpoint)
    if path and not http and not os.environ.get("AIRCAST_CSV_PATH"):
        # In this process, the folder the operator names is the csv source's root, as
        # `aircast ingest --path` makes it (served functions keep their own setting).
        os.environ["AIRCAST_CSV_PATH"] = ingest["path"]
        services.reset()
    invoker: Any = HttpInvoker(_endpoints(endpoint), backoff=0.5) if http else InProcessInvoker()
    warmup = dt.timedelta(days=warmup_days) if warmup_days > 0 else None
    total = len(replay_plan(start, end)) + warmup_runs(start, warmup)
    with click.progressbar(length=total, label="replay", show_pos=True) as bar:
        summary = run_replay(
            invoker, start, end, {"ingest": ingest}, warmup, on_attempt=lambda _: bar.update(1)
        )
    click.echo(f"replayed {iso(start)} .. {iso(end)} in {summary.seconds:.1f}s")
    for function, row in summary.by_function().items():
        click.echo(
            f"  {function:<8} runs {row['runs']:>5}  ok {row['ok']:>5}  failed {row['failed']:>4}"
        )
    for attempt in summary.failures[:5]:
        click.echo(
            f"  failed: {attempt.schedule} as_of {iso(attempt.as_of) if attempt.as_of else '-'}"
            f" HTTP {attempt.status_code}: {attempt.answer.get('error', attempt.answer)}"
        )
    accuracy = get_services().warehouse.query(ACCURACY_BY_HORIZON, {"start": start, "end": end})
    if not accuracy.empty:
        click.echo("forecast_accuracy over the replay (forecasts issued in the period):")
        click.echo(frame_to_text(accuracy.round(3), 200))


@click.command()
@click.option("--days", default=28.0, show_default=True, help="Days of history to backfill.")
@click.option(
    "--replay-hours",
    default=26,
    show_default=True,
    help="Hours to replay (over 24: the hindcast has checked forecasts at every horizon).",
)
@click.option("--port", default=8080, show_default=True, help="The api's port (0: any).")
@click.pass_context
def demo(ctx: click.Context, days: float, replay_hours: int, port: int) -> None:
    """Set up, fill, train, forecast and serve the local stack.

    Unless set, the demo forecasts several pollutants (AIRCAST_TARGETS) with weather
    forecasts as inputs and a small training budget; see docs/usage.md. Its JSON event log
    goes to $AIRCAST_HOME/logs/demo.log (-v: on stderr too).
    """
    from common.ops.demo import demo_settings, run_demo, should_serve

    demo_settings()
    verbose = bool((ctx.find_root().obj or {}).get("verbose"))
    route_logs("demo", verbose, level="INFO")
    run_demo(get_services(), days, replay_hours, port, should_serve(), wait_for_interrupt)


COMMANDS = (serve, scheduler, run_job, replay, demo)

ACCURACY_BY_HORIZON = """
SELECT horizon_h, COUNT(*) AS n, AVG(abs_error) AS mae, SQRT(AVG(error * error)) AS rmse,
       AVG(CASE WHEN covered THEN 1.0 ELSE 0.0 END) AS coverage
FROM forecast_accuracy
WHERE issued_at >= @start AND issued_at <= @end
GROUP BY horizon_h ORDER BY horizon_h
"""


def _endpoints(pairs: tuple[str, ...]) -> dict[str, str]:
    """--endpoint NAME=URL pairs over the URLs `aircast serve` recorded."""
    from common.scheduling.local import endpoints_from_args

    try:
        return endpoints_from_args(pairs, get_services().settings.home)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--endpoint") from None
