"""The jobs the functions run, run here in-process on the configured backend: ingest (and
its long-range form, backfill), train, predict and monitor.

Each command imports its job when it runs: the model code takes seconds to import, and
`aircast sql` or `--help` should not wait for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from common.core.errors import BadRequest, RunFailed
from common.core.timeutil import iso
from common.ops.cli.console import TIME, parse_request, print_run
from common.runtime.services import Services, get_services
from common.sources import BACKFILL_CHUNK_DAYS, SOURCE_NAMES, default_source

if TYPE_CHECKING:
    from common.ingest.job import IngestRequest


@click.command()
@click.option("--source", type=click.Choice(SOURCE_NAMES), help="Default: backend's default.")
@click.option("--as-of", "as_of", type=TIME, help="Cut-off time (default: now).")
@click.option("--start", type=TIME, help="Window start (with --end): a backfill.")
@click.option("--end", type=TIME, help="Window end (with --start).")
@click.option("--location", "locations", multiple=True, help="Only these location ids.")
@click.option("--path", type=click.Path(exists=True), help="File or folder for --source csv.")
def ingest(
    source: str | None,
    as_of: dt.datetime | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    locations: tuple[str, ...],
    path: str | None,
) -> None:
    """Ingest the latest hours (or --start..--end) from a source."""
    from common.ingest.job import run_ingest

    request = _ingest_request(source, locations, path, as_of=as_of, start=start, end=end)
    print_run(run_ingest(request, _services(path)))


@click.command()
@click.option("--start", required=True, type=TIME, help="First hour.")
@click.option("--end", required=True, type=TIME, help="Last hour.")
@click.option("--source", type=click.Choice(SOURCE_NAMES), help="Default: backend's default.")
@click.option("--location", "locations", multiple=True, help="Only these location ids.")
@click.option("--path", type=click.Path(exists=True), help="File or folder for --source csv.")
@click.option(
    "--chunk-days", type=click.IntRange(1, 366), help="Days per run (default: per source)."
)
@click.option(
    "--forecasts",
    is_flag=True,
    help="Backfill past forecasts as issued (weather from Open-Meteo's Previous Runs / "
    "Historical Forecast APIs) instead of observations.",
)
def backfill(
    start: dt.datetime,
    end: dt.datetime,
    source: str | None,
    locations: tuple[str, ...],
    path: str | None,
    chunk_days: int | None,
    forecasts: bool,
) -> None:
    """Ingest a long past range in chunks, with a progress bar.

    Each chunk is one ingest run (one `runs` row). Observations write no forecasts (a past
    answer's later hours are what happened); `--forecasts` fills `weather_forecasts` (and,
    for synthetic, `air_quality_forecasts`) from the source's archive of past forecasts,
    so training uses forecasts as issued from the first day. Re-running is safe:
    unchanged rows are not written again.
    """
    from common.ingest.job import run_ingest

    if end <= start:
        raise click.BadParameter("--end must be after --start", param_hint="--end")
    services = _services(path)
    days = chunk_days or services.settings.backfill_chunk_days
    days = days or BACKFILL_CHUNK_DAYS[source or default_source(services.settings)]
    totals: dict[str, int] = {}
    failures: list[str] = []
    chunks = list(hour_chunks(start, end, dt.timedelta(days=days)))
    with click.progressbar(chunks, label="backfill", show_pos=True, file=sys.stderr) as bar:
        for a, b in bar:
            extra = {"forecasts": True} if forecasts else {}
            request = _ingest_request(source, locations, path, start=a, end=b, **extra)
            try:
                result = run_ingest(request, services)
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


@click.command()
@click.option("--as-of", "as_of", type=TIME, help="Cut-off time (default: now).")
@click.option("--window-days", type=int, help="Training window (default: settings).")
@click.option("--max-rows", type=int, help="Row budget of the fit (default: settings).")
@click.option("--tune", is_flag=True, help="Search parameters first (AIRCAST_TUNE_* budget).")
@click.option("--target", help="Train this target only (default: each of AIRCAST_TARGETS).")
def train(
    as_of: dt.datetime | None,
    window_days: int | None,
    max_rows: int | None,
    tune: bool,
    target: str | None,
) -> None:
    """Retrain, evaluate and promote if the gate passes."""
    from common.train.job import TrainRequest, run_train

    services = get_services()
    if target is not None:  # refuse a target this deployment does not forecast before the wait
        try:
            services.settings.target_of(target)
        except BadRequest as exc:
            raise click.BadParameter(
                str(exc).removeprefix("target: "), param_hint="--target"
            ) from None
    request = parse_request(
        TrainRequest,
        as_of=as_of,
        window_days=window_days,
        max_rows=max_rows,
        tune=tune or None,
        target=target,
    )
    click.echo("training (this takes a while on a long window)...", err=True)
    result = run_train(request, services)
    for name, answer in result["targets"].items():
        if "metrics" not in answer:
            click.echo(f"{name}: {answer.get('error', answer.get('status'))}", err=True)
            continue
        m, gate = answer["metrics"], answer["gate"]
        click.echo(
            f"{name} version {answer['version']}: MAE {m['mae']:.2f} (persistence "
            f"{m['persistence_mae']:.2f}, seasonal naive {m['seasonal_naive_mae']:.2f}), "
            f"p10-p90 coverage {m['coverage']:.2f}",
            err=True,
        )
        for reason in gate["reasons"]:
            click.echo(f"  gate: {reason}", err=True)
    print_run(result)


@click.command()
@click.option("--as-of", "as_of", type=TIME, help="Issue time (default: now).")
@click.option("--shard", type=int, help="Forecast only this shard (0 .. shards-1).")
@click.option("--shards", type=int, help="Shard count (default: AIRCAST_PREDICT_SHARDS).")
def predict(as_of: dt.datetime | None, shard: int | None, shards: int | None) -> None:
    """Forecast every active location (or one shard's) with the model."""
    from common.predict.job import PredictRequest, run_predict

    request = parse_request(PredictRequest, as_of=as_of, shard=shard, shards=shards)
    result = run_predict(request, get_services())
    for name, answer in result["targets"].items():
        if "skipped" in answer:  # no production model for this target yet
            click.echo(f"{name}: skipped: {answer['skipped']}", err=True)
            continue
        c = answer["counts"]
        click.echo(
            f"{name}: model {answer['model_version']} issued {result['issued_at']}: "
            f"{c['locations']} locations x {result['horizon']} h, {c['written']} rows written, "
            f"{c['skipped']} skipped",
            err=True,
        )
    for s in result["skipped"][:20]:
        click.echo(f"  skipped {s['target']} at {s['location_id']}: {s['reason']}", err=True)
    print_run(result)


@click.command()
@click.option("--as-of", "as_of", type=TIME, help="Evaluation time (default: now).")
def monitor(as_of: dt.datetime | None) -> None:
    """Evaluate and store the health status (`status` only prints it)."""
    from common.monitoring.job import MonitorRequest, run_monitor

    result = run_monitor(parse_request(MonitorRequest, as_of=as_of), get_services())
    bad = {k: v for k, v in result["conditions"].items() if v != "ok"}
    click.echo(
        f"health {result['health']} at {result['as_of']}"
        + (" (" + ", ".join(f"{k} {v}" for k, v in bad.items()) + ")" if bad else "")
        + ("" if result["stored"] else "; not stored: a newer status exists"),
        err=True,
    )
    print_run(result)


COMMANDS = (ingest, backfill, train, predict, monitor)


def hour_chunks(
    start: dt.datetime, end: dt.datetime, step: dt.timedelta
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """[start, end] as consecutive whole-hour ranges of at most `step`, both ends inclusive."""
    t = start
    while t <= end:
        yield t, min(t + step - dt.timedelta(hours=1), end)
        t += step


def _services(path: str | None) -> Services:
    """This process's services; a local --path the operator names becomes the csv source's
    root (AIRCAST_CSV_PATH) for the command, as a deployment would configure it."""
    services = get_services()
    if path is None:
        return services
    settings = services.settings.model_copy(update={"csv_path": Path(path).resolve()})
    return dataclasses.replace(services, settings=settings)


def _ingest_request(
    source: str | None, locations: tuple[str, ...], path: str | None, **window: Any
) -> IngestRequest:
    from common.ingest.job import IngestRequest

    return parse_request(
        IngestRequest,
        source=source,
        locations=list(locations) or None,
        path=str(Path(path).resolve()) if path else None,
        **window,
    )
