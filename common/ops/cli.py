"""The `aircast` command line: the same jobs the functions run, on the configured backend.

Every command reads AIRCAST_BACKEND, AIRCAST_HOME and the other settings from the
environment (see README), exactly as the deployed functions do.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pandas as pd

from common.core.config import ConfigError
from common.core.errors import AircastError, RunFailed
from common.core.schema import TABLES, VIEWS
from common.core.timeutil import iso, parse_time
from common.runtime.services import Services, get_services
from common.scheduling.local import ReplayError
from common.scheduling.schedules import FUNCTIONS, SCHEDULES
from common.scheduling.stack import StackError
from common.sources import SOURCES as SOURCE_NAMES
from common.storage import StoreError
from common.warehouse import WarehouseError
from common.warehouse.sql import SQLError

EXPECTED_ERRORS = (
    ConfigError,
    WarehouseError,
    StoreError,
    SQLError,
    AircastError,
    RunFailed,
    StackError,
    ReplayError,
)


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one clear line and a non-zero exit, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EXPECTED_ERRORS as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def services() -> Services:
    return get_services()


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aircast")
@click.option("-v", "--verbose", is_flag=True, help="Show the JSON event log on stderr.")
def main(verbose: bool) -> None:
    """aircast: serverless air-quality forecasting (ingest, train, predict, serve).

    Runs on the backend chosen by AIRCAST_BACKEND (local: DuckDB + a folder under
    AIRCAST_HOME; gcp: BigQuery + Cloud Storage).
    """
    if verbose:
        os.environ["AIRCAST_LOG_LEVEL"] = "INFO"
    else:  # a person at a terminal wants results; the event log is for functions
        os.environ.setdefault("AIRCAST_LOG_LEVEL", "WARNING")


@main.command()
@friendly_errors
def init() -> None:
    """Create the dataset, tables and views (idempotent)."""
    svc = services()
    svc.warehouse.ensure_schema()
    where = (
        f"{svc.settings.warehouse_path}"
        if svc.settings.backend == "local"
        else f"{svc.settings.project}.{svc.settings.dataset}"
    )
    click.echo(f"schema ready in {where} ({svc.settings.backend} backend)")
    for name in (*TABLES, *VIEWS):
        kind = "table" if name in TABLES else "view"
        click.echo(f"  {kind:<5} {svc.settings.dataset}.{name}")


@main.command()
@click.argument("query", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print rows as a JSON array of objects.")
@click.option("--param", "-p", multiple=True, metavar="NAME=VALUE", help="Query parameter @NAME.")
@click.option("--max-rows", default=200, show_default=True, help="Rows shown in table output.")
@friendly_errors
def sql(query: str | None, as_json: bool, param: tuple[str, ...], max_rows: int) -> None:
    """Run SQL over the warehouse; no QUERY lists the tables.

    SQL is BigQuery's dialect (translated for DuckDB locally). Tables are named without
    dataset (`SELECT * FROM latest_forecasts`). QUERY `-` reads the SQL from stdin.
    """
    warehouse = services().warehouse
    if query is None:
        frame = table_summary()
    else:
        if query == "-":
            query = sys.stdin.read()
        frame = warehouse.query(query, parse_params(param))
    if as_json:
        click.echo(frame_to_json(frame))
        return
    click.echo(frame_to_text(frame, max_rows))


def table_summary() -> pd.DataFrame:
    """Every table and view with its row count."""
    warehouse = services().warehouse
    rows = []
    for name in (*TABLES, *VIEWS):
        count = warehouse.query(f"SELECT COUNT(*) AS n FROM {name}")["n"].iloc[0]
        rows.append(
            {"name": name, "kind": "table" if name in TABLES else "view", "rows": int(count)}
        )
    return pd.DataFrame(rows)


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """NAME=VALUE pairs; values that look like numbers become numbers."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--param")
        try:
            out[name] = int(value)
        except ValueError:
            try:
                out[name] = float(value)
            except ValueError:
                out[name] = value
    return out


def frame_to_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", date_format="iso", date_unit="s", force_ascii=False)


def frame_to_text(frame: pd.DataFrame, max_rows: int) -> str:
    if frame.columns.empty:
        return "(no result)"
    if frame.empty:
        return "  ".join(frame.columns) + "\n(0 rows)"
    shown = frame.head(max_rows).to_string(index=False)
    more = len(frame) - max_rows
    return (
        shown
        + (f"\n... {more} more rows (use --max-rows or --json)" if more > 0 else "")
        + (f"\n({len(frame)} rows)")
    )


def print_run(result: dict[str, Any]) -> None:
    """A run's answer: a one-line summary on stderr, the JSON on stdout."""
    counts = " ".join(f"{k}={v}" for k, v in result.get("counts", {}).items())
    click.echo(f"{result['function']} {result['status']} ({result['run_id']}) {counts}", err=True)
    for failure in result.get("failed_locations", []):
        click.echo(f"  failed {failure['location_id']}: {failure['error']}", err=True)
    print_json(result)


class TimeParam(click.ParamType):
    """An ISO-8601 time on the command line (naive means UTC)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.datetime):
            return value
        try:
            return parse_time(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TIME = TimeParam()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def wait_for_interrupt(served: Callable[[], bool] = lambda: True) -> None:
    """Block until Ctrl-C or SIGTERM (so `kill` also stops the served children), or until
    `served()` says a child process has died."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while served():
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)


@main.command()
@click.argument("functions", nargs=-1, type=click.Choice(FUNCTIONS))
@click.option("--port", default=8080, show_default=True, help="First port (one per function).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@friendly_errors
def serve(functions: tuple[str, ...], port: int, host: str) -> None:
    """Serve functions over HTTP (default: the api on :8080).

    Each runs under functions-framework, as on Cloud Run.

    Functions take consecutive ports from --port; their URLs are recorded in
    $AIRCAST_HOME/endpoints.json for `aircast scheduler`. Logs go to $AIRCAST_HOME/logs/.
    """
    from common.scheduling import stack as localstack

    home = services().settings.home
    names = list(dict.fromkeys(functions)) or ["api"]
    with localstack.serve(names, port, host, home=home) as urls:
        for name, url in urls.items():
            click.echo(f"{name:<8} {url}")
        click.echo(f"logs in {home / 'logs'}; Ctrl-C to stop")
        wait_for_interrupt()


@main.command()
@click.option("--endpoint", "-e", multiple=True, metavar="NAME=URL", help="Function URL.")
@click.option("--run-now", multiple=True, type=click.Choice(FUNCTIONS), help="Fire once at start.")
@click.option("--backoff", default=5.0, show_default=True, help="Retry backoff factor, seconds.")
@friendly_errors
def scheduler(endpoint: tuple[str, ...], run_now: tuple[str, ...], backoff: float) -> None:
    """Fire the schedules at served functions, like Cloud Scheduler.

    Reads the same schedule definition as Terraform (common/schedules.py; cron in UTC).
    Endpoints default to the ones `aircast serve` recorded.
    """
    from common.scheduling.local import HttpInvoker, Scheduler, endpoints_from_args, fire

    try:
        urls = endpoints_from_args(endpoint, services().settings.home)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--endpoint") from None
    invoker = HttpInvoker(urls, backoff)
    now = dt.datetime.now(dt.UTC)
    for s in SCHEDULES:
        nxt = next(s.fire_times(now, now + dt.timedelta(days=400)))
        click.echo(f"{s.name:<26} {s.cron:<12} -> {urls.get(s.function, '?')}  next {iso(nxt)}")
    for function in run_now:
        schedule = next(s for s in SCHEDULES if s.function == function)
        attempt = fire(invoker, schedule, dict(schedule.body))
        click.echo(f"{schedule.name}: HTTP {attempt.status_code} {attempt.answer.get('status')}")
    runner = Scheduler(invoker)
    runner.start()
    click.echo("scheduler running; Ctrl-C to stop")
    wait_for_interrupt()
    runner.stop()


@main.command("run-job")
@click.argument("name")
@click.option("--region", help="Region of the job (default: AIRCAST_REGION).")
@click.option("--endpoint", hidden=True, help="Cloud Scheduler API endpoint (tests).")
@friendly_errors
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
        f'  target {job["target"]}; follow it with: aircast sql "SELECT * FROM runs '
        'ORDER BY started_at DESC LIMIT 5"'
    )


@main.command()
@click.option("--start", "start", required=True, type=TIME, help="First simulated hour.")
@click.option("--end", "end", required=True, type=TIME, help="Last simulated hour.")
@click.option("--source", help="Ingest source (default: the backend's default).")
@click.option("--path", type=click.Path(exists=True, file_okay=False), help="Folder for csv.")
@click.option("--warmup-days", default=14.0, show_default=True, help="History before --start.")
@click.option("--http", "over_http", is_flag=True, help="Call served functions over HTTP.")
@click.option("--endpoint", "-e", multiple=True, metavar="NAME=URL", help="Function URL.")
@friendly_errors
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
    from common.scheduling.local import (
        HttpInvoker,
        InProcessInvoker,
        endpoints_from_args,
        replay_plan,
        warmup_runs,
    )
    from common.scheduling.local import replay as run_replay

    if end <= start:
        raise click.BadParameter("--end must be after --start", param_hint="--end")
    settings = services().settings
    ingest: dict[str, Any] = {}
    if source:
        ingest["source"] = source
    if path:
        ingest["path"] = str(Path(path).resolve())
    if over_http or endpoint:
        invoker: Any = HttpInvoker(endpoints_from_args(endpoint, settings.home), backoff=0.5)
    else:
        invoker = InProcessInvoker()
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
    accuracy = services().warehouse.query(ACCURACY_BY_HORIZON, {"start": start, "end": end})
    if not accuracy.empty:
        click.echo("forecast_accuracy over the replay (forecasts issued in the period):")
        click.echo(frame_to_text(accuracy.round(3), 200))


@main.command()
@click.option("--source", type=click.Choice(SOURCE_NAMES), help="Default: backend's default.")
@click.option("--as-of", "as_of", type=TIME, help="Cut-off time (default: now).")
@click.option("--start", type=TIME, help="Window start (with --end): a backfill.")
@click.option("--end", type=TIME, help="Window end (with --start).")
@click.option("--location", "locations", multiple=True, help="Only these location ids.")
@click.option("--path", type=click.Path(exists=True), help="File or folder for --source csv.")
@friendly_errors
def ingest(
    source: str | None,
    as_of: dt.datetime | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    locations: tuple[str, ...],
    path: str | None,
) -> None:
    """Ingest the latest hours (or --start..--end) from a source."""
    from common.ingest.job import IngestRequest, run_ingest

    req = parse_request(
        IngestRequest,
        as_of=as_of,
        start=start,
        end=end,
        source=source,
        locations=list(locations) or None,
        path=str(Path(path).resolve()) if path else None,
    )
    print_run(run_ingest(req))


@main.command()
@click.option("--start", required=True, type=TIME, help="First hour.")
@click.option("--end", required=True, type=TIME, help="Last hour.")
@click.option("--source", type=click.Choice(SOURCE_NAMES), help="Default: backend's default.")
@click.option("--location", "locations", multiple=True, help="Only these location ids.")
@click.option("--path", type=click.Path(exists=True), help="File or folder for --source csv.")
@click.option(
    "--chunk-days", type=click.IntRange(1, 366), help="Days per run (default: per source)."
)
@friendly_errors
def backfill(
    start: dt.datetime,
    end: dt.datetime,
    source: str | None,
    locations: tuple[str, ...],
    path: str | None,
    chunk_days: int | None,
) -> None:
    """Ingest a long past range in chunks, with a progress bar.

    Each chunk is one ingest run (one `runs` row). No weather forecasts are written: none
    was archived for past hours. Re-running is safe: unchanged rows are not written again.
    """
    from common.ingest.job import IngestRequest, run_ingest

    if end <= start:
        raise click.BadParameter("--end must be after --start", param_hint="--end")
    from common.sources import BACKFILL_CHUNK_DAYS, default_source

    settings = services().settings
    days = chunk_days or settings.backfill_chunk_days
    step = dt.timedelta(days=days or BACKFILL_CHUNK_DAYS[source or default_source(settings)])
    chunks, t = [], start
    while t <= end:
        chunks.append((t, min(t + step - dt.timedelta(hours=1), end)))
        t += step
    totals: dict[str, int] = {}
    failures: list[str] = []
    with click.progressbar(chunks, label="backfill", show_pos=True, file=sys.stderr) as bar:
        for a, b in bar:
            req = parse_request(
                IngestRequest,
                start=a,
                end=b,
                source=source,
                locations=list(locations) or None,
                path=str(Path(path).resolve()) if path else None,
            )
            try:
                result = run_ingest(req)
            except RunFailed as exc:
                raise click.ClickException(
                    f"chunk {iso(a)}..{iso(b)} failed: {exc.result.get('error')}. Earlier "
                    "chunks are stored; re-running the backfill is safe (unchanged rows are "
                    "not written again)."
                ) from None
            for k, v in result["counts"].items():
                totals[k] = totals.get(k, 0) + v
            failures += [
                f"{iso(a)}: {f['location_id']}: {f['error']}" for f in result["failed_locations"]
            ]
    click.echo(" ".join(f"{k}={v}" for k, v in totals.items()))
    for line in failures[:20]:
        click.echo(f"  failed {line}", err=True)


@main.command()
@click.option("--as-of", "as_of", type=TIME, help="Cut-off time (default: now).")
@click.option("--window-days", type=int, help="Training window (default: settings).")
@click.option("--max-rows", type=int, help="Row budget of the fit (default: settings).")
@friendly_errors
def train(as_of: dt.datetime | None, window_days: int | None, max_rows: int | None) -> None:
    """Retrain, evaluate and promote if the gate passes."""
    from common.train.job import TrainRequest, run_train

    req = parse_request(TrainRequest, as_of=as_of, window_days=window_days, max_rows=max_rows)
    click.echo("training (this takes a while on a long window)...", err=True)
    result = run_train(req)
    m, gate = result["metrics"], result["gate"]
    click.echo(
        f"version {result['version']}: MAE {m['mae']:.2f} (persistence {m['persistence_mae']:.2f},"
        f" seasonal naive {m['seasonal_naive_mae']:.2f}), p10-p90 coverage {m['coverage']:.2f}",
        err=True,
    )
    for reason in gate["reasons"]:
        click.echo(f"  gate: {reason}", err=True)
    print_run(result)


@main.command()
@click.option("--as-of", "as_of", type=TIME, help="Issue time (default: now).")
@friendly_errors
def predict(as_of: dt.datetime | None) -> None:
    """Forecast every active location with the production model."""
    from common.predict.job import PredictRequest, run_predict

    result = run_predict(parse_request(PredictRequest, as_of=as_of))
    c = result["counts"]
    click.echo(
        f"model {result['model_version']} issued {result['issued_at']}: {c['locations']} "
        f"locations x {result['horizon']} h, {c['written']} rows written, {c['skipped']} skipped",
        err=True,
    )
    for s in result["skipped"][:20]:
        click.echo(f"  skipped {s['location_id']}: {s['reason']}", err=True)
    print_run(result)


@main.command()
@click.option("--days", default=45.0, show_default=True, help="Days of history to backfill.")
@click.option("--replay-hours", default=24, show_default=True, help="Hours to replay.")
@click.option("--port", default=8080, show_default=True, help="The api's port (0: any).")
@friendly_errors
def demo(days: float, replay_hours: int, port: int) -> None:
    """Set up, fill, train, forecast and serve the local stack."""
    from common.ops.demo import run_demo, should_serve

    run_demo(services(), days, replay_hours, port, should_serve(), wait_for_interrupt)


def parse_request(model: type, **fields: Any) -> Any:
    """Build a job request from CLI options, with the HTTP path's validation messages."""
    from common.runtime.handler import parse

    return parse(model, {k: v for k, v in fields.items() if v is not None})


ACCURACY_BY_HORIZON = """
SELECT horizon_h, COUNT(*) AS n, AVG(abs_error) AS mae, SQRT(AVG(error * error)) AS rmse,
       AVG(CASE WHEN covered THEN 1.0 ELSE 0.0 END) AS coverage
FROM forecast_accuracy
WHERE issued_at >= @start AND issued_at <= @end
GROUP BY horizon_h ORDER BY horizon_h
"""


if __name__ == "__main__":
    main()
