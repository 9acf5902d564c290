"""The ingest job: fetch a window from a source, validate, land what is good.

A scheduled run takes the last AIRCAST_INGEST_LOOKBACK_HOURS up to as_of (the overlap
catches late data); a backfill gives start and end. Accepted rows that already stand in
`observations` with the same values are not written again, so hourly overlaps and
re-runs add nothing, while a corrected value lands and supersedes the old one. Bad rows
go to `rejected_rows` with a reason; one failing location does not fail the others. The
row checks are `common.ingest.validation`; what is written, and how, `common.ingest.writes`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from common.core.catalog import check_source, provenance_of
from common.core.config import Settings
from common.core.errors import BadRequest
from common.core.faults import checkpoint
from common.core.redaction import redact
from common.core.timeutil import UTC, UTCDateTime, floor_hour, iso, resolve_as_of
from common.ingest.imports import is_gcs_path, staged
from common.ingest.validation import validate
from common.ingest.writes import (
    Provenance,
    new_or_changed,
    write_forecasts,
    write_past_forecasts,
    write_rejections,
)
from common.runtime import locations as locations_mod
from common.runtime.runs import Outcome, Run, RunAnswer, run_job
from common.runtime.services import Services
from common.sources import Location, Source, Window, default_source, make_source
from common.sources.base import Batch, Rejection, payload_text
from common.sources.http import SourceError
from common.storage import ArtifactStore
from common.warehouse import Warehouse

MAX_WINDOW = dt.timedelta(days=400)


class IngestRequest(BaseModel):
    """Body of a POST to the ingest function (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    as_of: UTCDateTime | None = None
    start: UTCDateTime | None = None
    # Validated even when absent, so "start without end" is reported against `end`.
    end: UTCDateTime | None = Field(default=None, validate_default=True)
    locations: list[str] | None = None
    source: str | None = None
    path: str | None = None
    forecasts: bool = Field(
        False,
        description="Backfill the forecasts as issued for the hours start..end instead of "
        "observations: open-meteo's past weather forecasts (Previous Runs API, else the "
        "Historical Forecast API, labelled so), synthetic's own weather and CAMS forecasts.",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        return None if v is None else check_source(v)

    @field_validator("locations")
    @classmethod
    def _locations(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("must not be empty (omit it for every location)")
            for item in v:
                locations_mod.check_location_id(item)
        return v

    @field_validator("end")
    @classmethod
    def _window(cls, end: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        start, as_of = info.data.get("start"), info.data.get("as_of")
        if "start" not in info.data:
            return end  # start itself was invalid; that error is the one to report
        if (start is None) != (end is None):
            raise ValueError("start and end go together (a backfill window)")
        if start is not None and end is not None:
            if end < start:
                raise ValueError("end is before start")
            if end - start > MAX_WINDOW:
                raise ValueError(f"window longer than {MAX_WINDOW.days} days; use aircast backfill")
            if as_of is not None and end > as_of:
                raise ValueError("end is after as_of")
        return end


class FetchWindow(BaseModel):
    start: dt.datetime
    end: dt.datetime


class FailedLocation(BaseModel):
    location_id: str
    error: str


class IngestAnswer(RunAnswer):
    """The ingest function's answer: the run's fields, the source, the window fetched and
    the locations that failed (the others landed)."""

    source: str | None = None
    window: FetchWindow | None = None
    failed_locations: list[FailedLocation] | None = None


@dataclass(frozen=True)
class IngestPlan:
    """What a request asks for, checked before the run starts (a bad request records no run)."""

    source: Source
    window: Window
    targets: list[Location]  # the places to fetch; empty when the source discovers its own
    horizon: int = 24  # the forecast horizon (hours) a past-forecast backfill serves


def run_ingest(request: IngestRequest, services: Services) -> dict[str, Any]:
    """Fetch, validate and land one window (see the module docstring)."""
    if is_gcs_path(request.path):  # history uploaded to gs://<bucket>/imports/
        with staged(str(request.path), services.settings, services.store) as (settings, path):
            local = request.model_copy(update={"path": path})
            plan = plan_ingest(local, settings, services.store)
            return _run(request, plan, services)
    return _run(request, plan_ingest(request, services.settings, services.store), services)


def _run(request: IngestRequest, plan: IngestPlan, services: Services) -> dict[str, Any]:
    return run_job(
        "ingest",
        request,
        services,
        lambda run: (
            _ingest_past_forecasts(plan, services.warehouse, run)
            if request.forecasts
            else _ingest(request, plan, services, run)
        ),
        as_of=plan.window.as_of,
        params={"source": plan.source.name},
        answer=IngestAnswer,
        hold_warehouse=False,  # the fetch holds no connection; the landing holds one
    )


def plan_ingest(
    request: IngestRequest, settings: Settings, store: ArtifactStore | None = None
) -> IngestPlan:
    """The source, the window and the places to fetch; a 400 naming the field otherwise."""
    as_of = resolve_as_of(request.as_of)
    if request.start is not None and request.end is not None:
        if request.end > as_of:
            raise BadRequest("end is after as_of (now, unless given)", field="end")
        window = Window(_ceil_hour(request.start), floor_hour(request.end), as_of, live=False)
    else:
        lookback = dt.timedelta(hours=settings.ingest_lookback_hours)
        window = Window(as_of - lookback, as_of, as_of, live=True)
    name = request.source or default_source(settings)
    try:
        source = make_source(name, settings, request.path)
    except SourceError as exc:
        raise BadRequest(str(exc), field="path") from None
    if request.forecasts and (request.start is None or not source.keeps_past_forecasts):
        why = "needs start and end" if request.start is None else f"{name} keeps none"
        raise BadRequest(f"a backfill of past forecasts {why}", field="forecasts")
    targets = _targets(source, settings, request.locations, store)
    return IngestPlan(source, window, targets, settings.horizon)


def _ingest(request: IngestRequest, plan: IngestPlan, services: Services, run: Run) -> Outcome:
    source, window, name = plan.source, plan.window, plan.source.name
    warehouse = services.warehouse
    # `written` on the run's row is what the monitor counts as landed (common.monitoring.
    # signals.rejected): kept true at every point a run may fail, and absent only while
    # the observations' append is under way (then the monitor counts them by run_id).
    run.counts = {"written": 0}
    try:
        batch = source.redacted(source.fetch(plan.targets, window))
    except SourceError as exc:  # the whole source is unusable (e.g. no network)
        raise SourceError(redact(f"{name}: {exc}")) from None
    with warehouse.session():
        return _land(request, plan, services, run, batch)


def _land(
    request: IngestRequest, plan: IngestPlan, services: Services, run: Run, batch: Batch
) -> Outcome:
    """The fetched batch checked and written, each table once per delivery."""
    source, window, name = plan.source, plan.window, plan.source.name
    warehouse = services.warehouse
    known, failed = _known_and_failed(plan, batch, request.locations)
    checked = validate(batch.observations, window)
    rejected = [*batch.rejected, *checked.rejected]
    delivery = f"ingest|{name}|{iso(window.start)}|{iso(window.end)}|{iso(window.as_of)}"

    def write(table: str, frame: pd.DataFrame) -> int:  # once per delivery of this request
        return warehouse.append(table, frame, key=delivery)

    landed = Provenance(name, run.run_id, dt.datetime.now(UTC), write)
    accepted, strangers = _known_only(checked.accepted, known, name)
    rejected += strangers
    new = new_or_changed(warehouse, accepted)
    write_rejections(rejected, landed)
    run.counts.pop("written", None)  # unknown until the append answers
    written = landed.write(
        "observations_raw",
        new.assign(
            source=name,
            run_id=run.run_id,
            ingested_at=landed.at,
            provenance=provenance_of(name),
        ),
    )
    run.counts["written"] = written
    checkpoint("ingest:observations-written")
    registered = _register(warehouse, source, known, accepted, whole=request.locations is None)
    forecasts = write_forecasts(
        warehouse, "weather_forecasts", batch.weather_forecasts, landed, window.as_of
    )
    cams = write_forecasts(
        warehouse, "air_quality_forecasts", batch.air_quality_forecasts, landed, window.as_of
    )
    outcome = Outcome(
        counts={
            "fetched": len(batch.observations),
            "accepted": len(accepted),
            "rejected": len(rejected),
            "written": written,
            "unchanged": int(len(accepted) - len(new)),
            "weather_forecasts": forecasts,
            "air_quality_forecasts": cams,
            "locations_registered": registered,
        },
        answer=_answer(name, window, failed),
        status="partial" if failed else "success",
    )
    if failed and accepted.empty and not (known.keys() - failed.keys()):
        run.take(outcome)  # the failed run's row still shows what was fetched
        raise SourceError(f"every location failed: {next(iter(failed.values()))}")
    return outcome


def _ingest_past_forecasts(plan: IngestPlan, warehouse: Warehouse, run: Run) -> Outcome:
    """A backfill of the forecasts as issued for the window's hours (the source's archive):
    rows keep their own issued_at and kind; a row already kept is not written again."""
    source, window = plan.source, plan.window
    batch = source.redacted(source.past_forecasts(plan.targets, window, plan.horizon))
    with warehouse.session():
        return _land_past_forecasts(plan, warehouse, run, batch)


def _land_past_forecasts(plan: IngestPlan, warehouse: Warehouse, run: Run, batch: Batch) -> Outcome:
    source, window = plan.source, plan.window
    delivery = f"past-forecasts|{source.name}|{iso(window.start)}|{iso(window.end)}"

    def write(table: str, frame: pd.DataFrame) -> int:  # once per delivery of this request
        return warehouse.append(table, frame, key=delivery)

    landed = Provenance(source.name, run.run_id, dt.datetime.now(UTC), write)
    counts = {}
    for table in ("weather_forecasts", "air_quality_forecasts"):
        counts[table] = write_past_forecasts(
            warehouse, table, getattr(batch, table), landed, window
        )
    counts["rejected"] = write_rejections(batch.rejected, landed)
    failed = dict(batch.failed)
    if failed and len(failed) == len(plan.targets):
        raise SourceError(f"every location failed: {next(iter(failed.values()))}")
    return Outcome(
        counts=counts,
        answer=_answer(source.name, window, failed),
        status="partial" if failed else "success",
    )


def _register(
    warehouse: Warehouse,
    source: Source,
    known: dict[str, Location],
    accepted: pd.DataFrame,
    whole: bool,
) -> int:
    """Register the places whose rows landed and, when the run fetched a source's `whole`
    configured set, retire those no longer in it. A place comes into being with its first
    row (after the rows landed): a fetch that reached nothing registers nothing."""
    with_rows = set(accepted["location_id"].astype(str)) if not accepted.empty else set()
    registered = locations_mod.register(warehouse, list(known.values()), landed=with_rows)
    if source.needs_locations and whole:
        registered += locations_mod.retire_missing(warehouse, source.name, set(known))
    return registered


def _answer(source: str, window: Window, failed: dict[str, str]) -> dict[str, Any]:
    """The run's answer beyond its counts: the source, the window and the failed places."""
    return {
        "source": source,
        "window": {"start": iso(window.start), "end": iso(window.end)},
        "failed_locations": [{"location_id": k, "error": v} for k, v in sorted(failed.items())],
    }


def _known_and_failed(
    plan: IngestPlan, batch: Batch, wanted: list[str] | None
) -> tuple[dict[str, Location], dict[str, str]]:
    """The places this run knows (by id) and those that failed, with their errors."""
    failed = dict(batch.failed)
    if plan.source.needs_locations:
        return {loc.location_id: loc for loc in plan.targets}, failed
    # The source discovered its places (csv files, data.gov.sg regions).
    known = {loc.location_id: loc for loc in batch.locations}
    for location_id in wanted or []:
        if location_id not in known:
            failed.setdefault(location_id, f"not found in the {plan.source.name} source")
    return known, failed


def _ceil_hour(t: dt.datetime) -> dt.datetime:
    f = floor_hour(t)
    return f if f == t else f + dt.timedelta(hours=1)


def _targets(
    source: Source, settings: Settings, wanted: list[str] | None, store: ArtifactStore | None
) -> list[Location]:
    if not source.needs_locations:
        return [Location(w, w, None, None, source.name) for w in wanted or []]
    try:
        configured = [
            loc for loc in locations_mod.configured(settings, store) if loc.source == source.name
        ]
    except locations_mod.LocationsError as exc:
        raise BadRequest(str(exc), field="locations") from None
    if wanted is None:
        if not configured:
            raise BadRequest(f"no locations configured for source {source.name}", field="source")
        return configured
    by_id = {loc.location_id: loc for loc in configured}
    unknown = [w for w in wanted if w not in by_id]
    if unknown:
        raise BadRequest(
            f"unknown locations for source {source.name}: {unknown}", field="locations"
        )
    return [by_id[w] for w in wanted]


def _known_only(
    accepted: pd.DataFrame, known: dict[str, Location], source: str
) -> tuple[pd.DataFrame, list[Rejection]]:
    """Rows of known locations; a row for a place nobody configured is quarantined."""
    if accepted.empty:
        return accepted, []
    stray = ~accepted["location_id"].isin(list(known))
    rejections = [
        Rejection(
            row["location_id"],
            row["ts"],
            f"location {row['location_id']!r} is not a location of source {source}",
            payload_text(row.dropna().to_dict()),
        )
        for _, row in accepted[stray].iterrows()
    ]
    return accepted[~stray].reset_index(drop=True), rejections
