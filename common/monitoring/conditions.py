"""The health conditions, each computed live from the warehouse and the store at as_of:
a `common.monitoring.health.HealthCondition` with its `name`, `state` (ok | warn | alert),
`detail`, `value`, the levels it is judged by and what explains it.
`common.monitoring.status` evaluates them all and stores the status."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from common.core.timeutil import in_future, iso, parse_time
from common.forecasting.features import grid_columns
from common.forecasting.registry import Registry
from common.forecasting.snapshot import issued_at_of, snapshot_keys
from common.forecasting.versions import NaturalSpread
from common.monitoring import drift, signals
from common.monitoring import thresholds as th
from common.monitoring.health import STATES, HealthCondition, TargetState, worst
from common.runtime import locations as locations_mod
from common.runtime.services import Services
from common.storage.base import ObjectMissing

__all__ = ["STATES", "build_condition", "every_target", "worst"]
log = logging.getLogger("aircast.health")


def _num(value: float | None, digits: int = 3) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


def build_condition(name: str, value: float | None, detail: str, **extra: Any) -> HealthCondition:
    """A condition named `name` judged by its levels (`state` given overrides them)."""
    level = th.LEVELS[name]
    state = extra.pop("state", None) or level.state(value)
    fields = {"unit": level.unit, "warn": level.warn, "alert": level.alert, **extra}
    return HealthCondition(name=name, state=state, detail=detail, value=_num(value), **fields)


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
            "lag_h": _num(r.lag_h, 1),
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
            "running_for_min": _num(r.running_min, 1),
            "last_success": _iso(r.last_success),
            "hours_since_success": _num(r.hours_since_success, 1),
        }
        for r in frame.itertuples()
    }
    hours = []
    for fn in ("ingest", "predict"):
        row = by_fn.get(fn)
        h = None if row is None else _num(row.hours_since_success, 1)
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
            "share": _num(rej / total if total else 0.0, 4),
            "reasons": reasons,
            "enough": total >= th.REJECTED_MIN_ROWS,
        }
    counted = {s: v for s, v in sources.items() if v["enough"]}
    if not counted:
        return build_condition(
            "rejected_share",
            None,
            f"fewer than {th.REJECTED_MIN_ROWS} rows ingested in {th.REJECTED_WINDOW_HOURS} h",
            sources=sources,
        )
    source, top = max(counted.items(), key=lambda kv: kv[1]["share"])
    reason = max(top["reasons"], key=top["reasons"].get, default=None)
    detail = f"{source}: {top['share']:.1%} of {top['rejected'] + top['accepted']} rows rejected"
    detail += f" (mostly: {reason})" if reason else ""
    return build_condition("rejected_share", top["share"], detail, sources=sources)


def _scores(rows: pd.DataFrame, error: str) -> dict[str, Any]:
    """n, MAE (of the `error` column's sums), persistence's, their ratio and the band's hits."""
    n = int(rows["n"].sum())
    p = float(rows["persistence_abs"].sum())
    banded = int(rows["banded"].sum())
    return {
        "n": n,
        "mae": _num(rows[error].sum() / n) if n else None,
        "persistence_mae": _num(p / n) if n else None,
        "ratio": _num(float(rows[error].sum()) / p if p > 0 else None),
        "coverage": _num(rows["covered"].sum() / banded if banded else None),
    }


def _history(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Every version with verified forecasts in the window, by horizon group: the record,
    of which only the production versions are judged (`accuracy`)."""
    versions: dict[str, dict[str, Any]] = {}
    for version, rows in frame.rename(columns={"model_abs": "served_abs"}).groupby("model_version"):
        groups = {
            r.horizons: {
                "n": int(r.n),
                "mae": _num(r.served_abs / r.n),
                "persistence_mae": _num(r.persistence_abs / r.n),
                "cams": _cams(r.cams_n, r.cams_abs, r.model_abs_cams),
            }
            for r in rows.itertuples()
        }
        versions[str(version)] = {
            **_scores(rows, "served_abs"),
            "cams": _cams(
                rows["cams_n"].sum(),
                pd.to_numeric(rows["cams_abs"]).sum(min_count=1),
                pd.to_numeric(rows["model_abs_cams"]).sum(min_count=1),
            ),
            "horizons": groups,
        }
    return versions


def _served(services: Services, as_of: dt.datetime, target: str) -> dict[str, Any] | None:
    """How the forecasts of `target`'s production version are doing as served (the model
    combined with the baselines), beside the model's own skill, the weights serving it
    and the places new to the version, reported apart; None without a production model."""
    registry = Registry.of_target(services.store, services.settings, target)
    pointer, _ = registry.production()
    if pointer is None:
        return None
    version = pointer.version
    cutoff = registry.metadata(version).trained_through
    frame = signals.served_accuracy(services.warehouse, as_of, target, version, cutoff)
    seen = frame[~frame["new_place"]]
    out: dict[str, Any] = {"target": target, "version": version, **_scores(seen, "served_abs")}
    out["model_ratio"] = _scores(seen, "model_abs")["ratio"]
    out["horizons"] = {
        str(h): {**_scores(g, "served_abs"), "model_ratio": _scores(g, "model_abs")["ratio"]}
        for h, g in seen.groupby("horizons")
    }
    new = frame[frame["new_place"]]
    if len(new):
        out["new_places"] = {
            **_scores(new, "served_abs"),
            "model_ratio": _scores(new, "model_abs")["ratio"],
        }
    state = signals.combination_state(
        services.warehouse, target, as_of, as_of - dt.timedelta(hours=th.ACCURACY_WINDOW_HOURS)
    )
    state = state[state["model_version"] == version]
    if len(state):
        out["weights"] = {
            f"{lo}-{hi}": {
                str(e): _num(w)
                for e, w in state[state["horizon_h"].between(lo, hi)]
                .groupby("expert")["weight"]
                .mean()
                .items()
            }
            for lo, hi in signals.HORIZON_GROUPS
            if state["horizon_h"].between(lo, hi).any()
        }
    return out


def _weights_text(weights: dict[str, dict[str, float | None]] | None) -> str:
    if not weights:
        return ""
    parts = []
    for group, w in weights.items():
        shares = "/".join(
            f"{w.get(e) or 0:.2f}" for e in ("model", "persistence", "seasonal_naive")
        )
        parts.append(f"{group} h {shares}")
    return "; weights model/persistence/seasonal naive " + ", ".join(parts)


def accuracy(services: Services, as_of: dt.datetime) -> HealthCondition:
    """Judges what is served now: each target's production version, its forecasts as
    served (the combination), with the model's own ratio and the weights beside it and
    new places apart; earlier versions with forecasts in the window are listed as
    history, never judged."""
    targets = services.settings.forecast_targets
    versions = _history(signals.accuracy(services.warehouse, as_of, targets))
    served = [s for t in targets if (s := _served(services, as_of, t)) is not None]
    current = {s["version"] for s in served}
    history = {v: a for v, a in versions.items() if v not in current}
    extra: dict[str, Any] = {"served": served, "versions": versions, "history": sorted(history)}
    counted = [s for s in served if s["n"] >= th.ACCURACY_MIN_ROWS and s["ratio"]]
    if not counted:
        detail = (
            f"fewer than {th.ACCURACY_MIN_ROWS} verified forecasts of the production "
            f"version in {th.ACCURACY_WINDOW_HOURS} h"
        )
        if history:
            detail += f" (earlier versions, history only: {', '.join(sorted(history))})"
        return build_condition("accuracy", None, detail, **extra)
    top = max(counted, key=lambda s: s["ratio"])
    state = th.LEVELS["accuracy"].state(top["ratio"])
    low = [s for s in counted if (s["coverage"] or 1) < th.COVERAGE_WARN_BELOW]
    if low and state == "ok":
        state = "warn"
    detail = (
        f"{top['target']} {top['version']} as served: MAE {top['mae']:.2f} vs persistence "
        f"{top['persistence_mae']:.2f} (ratio {top['ratio']:.2f}; the model alone "
        f"{top['model_ratio'] or float('nan'):.2f}) on {top['n']} forecasts in "
        f"{th.ACCURACY_WINDOW_HOURS} h"
    )
    if top["coverage"] is not None:
        detail += f"; 80 % band held {top['coverage']:.0%}"
    cams = versions.get(top["version"], {}).get("cams")
    if cams is not None:
        detail += (
            f"; vs CAMS on {cams['n']} forecasts with one: MAE {cams['model_mae']:.2f} vs "
            f"{cams['mae']:.2f} (ratio {cams['ratio']:.2f})"
        )
    detail += _weights_text(top.get("weights"))
    new = top.get("new_places")
    if new and new["ratio"] is not None:
        detail += f"; places new to it: ratio {new['ratio']:.2f} on {new['n']} forecasts"
    return build_condition("accuracy", top["ratio"], detail, state=state, **extra)


def _cams(n: Any, cams_abs: Any, model_abs: Any) -> dict[str, Any] | None:
    """aircast vs CAMS on the rows with a CAMS forecast; None where none (never zero). It
    informs (the status, the dashboard); the accuracy state is decided against persistence,
    since CAMS's local bias differs from place to place."""
    n = int(n or 0)
    if n == 0 or cams_abs is None or pd.isna(cams_abs):
        return None
    mae, model = float(cams_abs) / n, float(model_abs) / n
    return {
        "n": n,
        "mae": _num(mae),
        "model_mae": _num(model),
        "ratio": _num(model / mae if mae > 0 else None),
    }


def drift_condition(
    services: Services, as_of: dt.datetime, target: str | None = None
) -> HealthCondition:
    s = services.settings
    registry = Registry.of_target(services.store, s, target or s.default_target)
    pointer, _ = registry.production()
    if pointer is None:
        return build_condition("drift", None, "no model in production")
    version = pointer.version
    meta = registry.metadata(version)
    start = as_of - dt.timedelta(hours=th.DRIFT_WINDOW_HOURS)
    ref, against = drift.pick_reference(meta, start, as_of)
    if not ref:
        return build_condition(
            "drift", None, f"{version} stores no reference quantiles", version=version
        )
    columns = grid_columns(meta.feature_spec())
    ids: list[str] | None = None
    known = sorted(locations_mod.current(services.warehouse)["location_id"].astype(str))
    if len(known) > th.DRIFT_LOCATIONS:  # seeded by the as_of: the same sample on a re-run
        rng = np.random.default_rng(int(as_of.timestamp()))
        ids = sorted(rng.choice(known, th.DRIFT_LOCATIONS, replace=False).tolist())
    recent = signals.recent_inputs(services.warehouse, columns, start, as_of, 50_000, ids)
    if len(recent) < th.DRIFT_MIN_ROWS:
        detail = f"fewer than {th.DRIFT_MIN_ROWS} recent input rows"
        return build_condition("drift", None, detail, version=version)
    psi = drift.psi_by_column(ref, recent)
    try:  # the sample train stored with the version (none for versions trained before it)
        training = drift.read_sample(registry.store.get(registry.key(version, drift.SAMPLE_FILE)))
    except ObjectMissing:
        training = None
    auc = None
    if training is not None:
        picked = recent.sample(min(len(recent), th.ADVERSARIAL_SAMPLE), random_state=0)
        auc = drift.adversarial_auc(training, picked)
    column, level = drift_worst(psi, meta.reference_natural)
    value = psi[column] if column else None
    state = level.state(value)
    if auc is not None and auc > th.ADVERSARIAL_AUC_WARN and state == "ok":
        state = "warn"
    if column:
        detail = f"PSI {value:.3f} on {column} (warn {level.warn:.2f}, alert {level.alert:.2f})"
    else:
        detail = "no comparable inputs"
    detail += f" against {against}"
    if auc is not None:
        detail += f"; adversarial AUC {auc:.2f}"
    return build_condition(
        "drift",
        value,
        detail,
        state=state,
        warn=level.warn,
        alert=level.alert,
        version=version,
        psi=psi,
        adversarial_auc=auc,
        reference=against,
    )


def drift_worst(
    psi: dict[str, float], natural: dict[str, NaturalSpread]
) -> tuple[str | None, th.Level]:
    """The input furthest beyond its own alert level (PSI / that level), and its levels;
    (None, the fixed levels) with no inputs."""
    levels = {c: drift_levels(natural.get(c)) for c in psi}
    column = max(psi, key=lambda c: psi[c] / levels[c].alert, default=None)
    return column, levels[column] if column else th.LEVELS["drift"]


def drift_levels(natural: NaturalSpread | None) -> th.Level:
    """One input's drift levels: the fixed ones, raised to its training weeks' own PSI
    (warn above their NATURAL_PSI_QUANTILE, alert above the largest) where those were
    further apart."""
    fixed = th.LEVELS["drift"]
    if not natural:
        return fixed
    return dataclasses.replace(
        fixed, warn=max(fixed.warn, natural.quantile), alert=max(fixed.alert, natural.max)
    )


def snapshot(services: Services, as_of: dt.datetime, target: str | None = None) -> HealthCondition:
    """Age of the oldest part the api serves (one per predict shard): a shard whose runs
    fail keeps serving its last part, and this is where that shows."""
    shards = services.settings.predict_shards
    oldest: tuple[dt.datetime, str] | None = None
    newest: dt.datetime | None = None
    stale = missing = 0
    for key in snapshot_keys(shards, target, services.settings.default_target):
        try:
            data = services.store.get(key)
        except ObjectMissing:
            return build_condition(
                "snapshot", None, f"no serving snapshot at {key} (run predict)", state="alert"
            )
        issued = parse_time(issued_at_of(data))
        part = json.loads(data)
        served = part.get("forecasts") or {}
        stale += len(part.get("stale") or [])
        missing += sum(1 for s in part.get("skipped") or [] if s["location_id"] not in served)
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
