"""The health conditions, each computed live from the warehouse and the store at as_of:
a `common.monitoring.health.HealthCondition` with its `name`, `state` (ok | warn | alert),
`detail`, `value`, the levels it is judged by and what explains it.
`common.monitoring.status` evaluates them all and stores the status. Freshness, runs,
model age, rejections and the snapshot are here; the accuracy condition is in
`accuracy_condition`, the drift condition in `drift_condition`."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from common.core.timeutil import in_future, iso, parse_time
from common.forecasting.registry import Registry
from common.forecasting.snapshot import (
    HEAD_BYTES,
    PartCounts,
    counts_of,
    issued_at_of,
    snapshot_keys,
)
from common.monitoring import signals
from common.monitoring import thresholds as th
from common.monitoring.health import STATES, HealthCondition, TargetState, worst
from common.runtime.services import Services
from common.storage.base import ObjectMissing

__all__ = ["STATES", "build_condition", "every_target", "worst"]
log = logging.getLogger("aircast.health")


def rounded(value: float | None, digits: int = 3) -> float | None:
    """A value as the status shows it: `digits` decimals, None for none or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def build_condition(name: str, value: float | None, detail: str, **extra: Any) -> HealthCondition:
    """A condition named `name` judged by its levels (`state` given overrides them)."""
    level = th.LEVELS[name]
    state = extra.pop("state", None) or level.state(value)
    fields = {"unit": level.unit, "warn": level.warn, "alert": level.alert, **extra}
    return HealthCondition(name=name, state=state, detail=detail, value=rounded(value), **fields)


def freshness(services: Services, as_of: dt.datetime) -> HealthCondition:
    frame = signals.freshness(services.warehouse, as_of)
    if frame.empty:
        return build_condition("freshness", None, "no active locations yet")
    silent = frame[frame["newest"].isna()]
    lag = frame["lag_h"].fillna(th.FRESHNESS_LOOKBACK_DAYS * 24.0)
    level = th.LEVELS["freshness"]
    late = frame[lag > level.warn]
    worst_lag = float(lag.max())
    locations = [
        {
            "location_id": r.location_id,
            "source": r.source,
            "newest": _iso(r.newest),
            "lag_h": rounded(r.lag_h, 1),
        }
        for r in frame.loc[late.index].itertuples()
    ]
    detail = (
        f"{len(late)} of {len(frame)} active locations more than {level.warn:g} h behind "
        f"(largest lag {worst_lag:.0f} h; {len(silent)} silent over "
        f"{th.FRESHNESS_LOOKBACK_DAYS} days)"
        if len(late)
        else f"all {len(frame)} active locations within {level.warn:g} h (largest lag "
        f"{worst_lag:.0f} h)"
    )
    return build_condition("freshness", worst_lag, detail, locations=locations)


def runs(services: Services, as_of: dt.datetime) -> HealthCondition:
    frame = signals.runs(services.warehouse, as_of)
    by_fn = {r.function: r for r in frame.itertuples()}
    functions = {
        r.function: {
            "runs": int(r.runs),
            "failed": int(r.failed),
            "lost": int(r.lost),
            "unrecovered": int(r.unrecovered),
            "refused": int(r.refused),
            "running": int(r.running),
            "running_for_min": rounded(r.running_min, 1),
            "last_success": _iso(r.last_success),
            "hours_since_success": rounded(r.hours_since_success, 1),
        }
        for r in frame.itertuples()
    }
    hours = []
    for fn in ("ingest", "predict"):
        row = by_fn.get(fn)
        h = None if row is None else rounded(row.hours_since_success, 1)
        hours.append(h if h is not None else math.inf)
    value = max(hours)
    state = th.LEVELS["runs"].state(value if math.isfinite(value) else 1e9)
    unrecovered = {fn: f["unrecovered"] for fn, f in functions.items() if f["unrecovered"]}
    if unrecovered and state == "ok":
        state = "warn"
    parts = [
        f"{fn}: last success {f['last_success'] or 'never'}"
        + (f", {f['failed']} failed in {th.RUNS_WINDOW_HOURS} h" if f["failed"] else "")
        + (f" ({f['lost']} lost: killed or timed out)" if f["lost"] else "")
        + (
            f", {f['running']} running (the oldest for {f['running_for_min']:.0f} min)"
            if f["running"]
            else ""
        )
        + (f", {f['refused']} requests refused (4xx)" if f["refused"] else "")
        for fn, f in sorted(functions.items())
    ]
    detail = "; ".join(parts) or "no runs yet"
    shown = value if math.isfinite(value) else None
    return build_condition("runs", shown, detail, state=state, functions=functions)


def model_age(services: Services, as_of: dt.datetime, target: str | None = None) -> HealthCondition:
    s = services.settings
    registry = Registry.of_target(services.store, s, target or s.default_target)
    pointer, _ = registry.production()
    if pointer is None:
        return build_condition("model_age", None, "no model in production", state="alert")
    version = pointer.version
    trained = registry.metadata(version).trained_through
    days = max(0.0, (as_of - trained).total_seconds() / 86400)
    detail = f"production {version} trained on data up to {iso(trained)} ({days:.1f} days ago)"
    extra: dict[str, Any] = {}
    if in_future(trained):  # no train is about a later hour: a clock went wrong
        detail = f"production {version} trained on data up to {iso(trained)}, after now"
        extra["state"] = "alert"
    return build_condition(
        "model_age", days, detail, version=version, promoted_at=pointer.promoted_at, **extra
    )


def rejected_share(services: Services, as_of: dt.datetime) -> HealthCondition:
    """The largest share of rejected rows of one source over the ended ingest runs of the
    window; runs still running are named, and counted once they end."""
    frame = signals.rejected(services.warehouse, as_of)
    sources: dict[str, dict[str, Any]] = {}
    for source, rows in frame.groupby("source"):
        rej = int(rows["rejected"].sum())
        acc = int(rows["accepted"].iloc[0])
        total = rej + acc
        reasons = {
            str(r.reason): int(r.rejected) for r in rows.itertuples() if isinstance(r.reason, str)
        }
        sources[str(source)] = {
            "rejected": rej,
            "accepted": acc,
            "share": rounded(rej / total if total else 0.0, 4),
            "reasons": reasons,
            "enough": total >= th.REJECTED_MIN_ROWS,
            "running": int(rows["running"].iloc[0]),
        }
    running = sum(v["running"] for v in sources.values())
    pending = f"; {running} ingest run(s) still running, counted when they end" if running else ""
    counted = {s: v for s, v in sources.items() if v["enough"]}
    if not counted:
        return build_condition(
            "rejected_share",
            None,
            f"fewer than {th.REJECTED_MIN_ROWS} rows ingested in {th.REJECTED_WINDOW_HOURS} h"
            + pending,
            sources=sources,
        )
    source, top = max(counted.items(), key=lambda kv: kv[1]["share"])
    reason = max(top["reasons"], key=top["reasons"].get, default=None)
    detail = f"{source}: {top['share']:.1%} of {top['rejected'] + top['accepted']} rows rejected"
    detail += f" (mostly: {reason})" if reason else ""
    return build_condition("rejected_share", top["share"], detail + pending, sources=sources)


def snapshot(services: Services, as_of: dt.datetime, target: str | None = None) -> HealthCondition:
    """Age of the oldest part the api serves (one per predict shard): a shard whose runs
    fail keeps serving its last part, and this is where that shows. Each part is read from
    its first kilobytes (its issue time and the counts predict wrote there), not parsed
    whole (~11 MB each at 10,000 locations); only a part published without counts is."""
    shards = services.settings.predict_shards
    oldest: tuple[dt.datetime, str] | None = None
    newest: dt.datetime | None = None
    stale = missing = 0
    for key in snapshot_keys(shards, target, services.settings.default_target):
        try:
            head = services.store.head(key, HEAD_BYTES)
        except ObjectMissing:
            return build_condition(
                "snapshot", None, f"no serving snapshot at {key} (run predict)", state="alert"
            )
        issued = parse_time(issued_at_of(head))
        counts = counts_of(head) or _count(services.store.get(key))
        stale += counts.stale
        missing += counts.missing
        if oldest is None or issued < oldest[0]:
            oldest = (issued, key)
        newest = issued if newest is None or issued > newest else newest
    assert oldest is not None and newest is not None  # snapshot_keys is never empty
    issued, key = oldest
    hours = max(0.0, (as_of - issued).total_seconds() / 3600)
    detail = f"{key} issued at {iso(issued)} ({hours:.0f} h before as_of)"
    if shards > 1:
        detail = f"oldest of {shards} parts: " + detail
    extra: dict[str, Any] = {"stale": stale, "missing": missing}
    if stale or missing:  # serving fewer fresh forecasts than places: said, and a warning
        detail += f"; {stale} locations served a stale forecast, {missing} missing"
        if th.LEVELS["snapshot"].state(hours) == "ok":
            extra["state"] = "warn"
    if in_future(newest):  # no run is about a later hour: a clock went wrong
        detail = f"serving snapshot dated after now ({iso(newest)}); " + detail
        extra["state"] = "alert"
    return build_condition("snapshot", hours, detail, issued_at=iso(issued), **extra)


def _count(data: bytes) -> PartCounts:
    """The counts of a part published before predict wrote them: parsed from the whole part."""
    part = json.loads(data)
    served = part.get("forecasts") or {}
    return PartCounts(
        stale=len(part.get("stale") or []),
        missing=sum(1 for s in part.get("skipped") or [] if s["location_id"] not in served),
    )


def every_target(
    name: str, check: Callable[[Services, dt.datetime, str | None], HealthCondition]
) -> Callable[[Services, dt.datetime], HealthCondition]:
    """A per-model condition over every forecast target (AIRCAST_TARGETS): the worst
    target's condition, its detail prefixed with the target, and each target's state, value
    and detail under `targets`. One target: the condition as it is."""

    def run(services: Services, as_of: dt.datetime) -> HealthCondition:
        targets = services.settings.forecast_targets
        if len(targets) <= 1:
            return check(services, as_of, None)
        found: dict[str, HealthCondition] = {}
        for target in targets:
            try:
                found[target] = check(services, as_of, target)
            except Exception as exc:  # one target unreadable: the others still report
                log.warning("could not evaluate %s for %s", name, target, exc_info=True)
                error = f"could not evaluate: {type(exc).__name__}: {exc}"
                found[target] = build_condition(name, None, error, state="alert")
        top = max(targets, key=lambda t: (STATES.index(found[t].state), found[t].value or 0))
        each = {
            t: TargetState(state=c.state, value=c.value, detail=c.detail) for t, c in found.items()
        }
        return found[top].model_copy(
            update={"detail": f"{top}: {found[top].detail}", "target": top, "targets": each}
        )

    return run


def _iso(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return iso(pd.Timestamp(value).to_pydatetime())
