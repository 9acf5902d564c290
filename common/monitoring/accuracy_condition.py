"""The accuracy condition: how the forecasts served now (the combination of the production
version with the baselines) compare with persistence over the last hours, by horizon
group, with the model's own skill, each expert's weight, CAMS where it is present, and
earlier versions as history."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from common.forecasting import combination
from common.forecasting.registry import Registry
from common.forecasting.versions import ModelMetadata
from common.monitoring import signals
from common.monitoring import thresholds as th
from common.monitoring.conditions import build_condition, rounded
from common.monitoring.health import HealthCondition
from common.runtime.services import Services


def _scores(rows: pd.DataFrame, error: str) -> dict[str, Any]:
    """n, MAE (of the `error` column's sums), persistence's, their ratio and the band's hits."""
    n = int(rows["n"].sum())
    p = float(rows["persistence_abs"].sum())
    banded = int(rows["banded"].sum())
    return {
        "n": n,
        "mae": rounded(rows[error].sum() / n) if n else None,
        "persistence_mae": rounded(p / n) if n else None,
        "ratio": rounded(float(rows[error].sum()) / p if p > 0 else None),
        "coverage": rounded(rows["covered"].sum() / banded if banded else None),
    }


def _history(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Every version with verified forecasts in the window, by horizon group: the record,
    of which only the production versions are judged (`accuracy`)."""
    versions: dict[str, dict[str, Any]] = {}
    for version, rows in frame.groupby("model_version"):
        groups = {
            r.horizons: {
                "n": int(r.n),
                "mae": rounded(r.served_abs / r.n),
                "persistence_mae": rounded(r.persistence_abs / r.n),
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


def _production(services: Services, target: str) -> tuple[str, ModelMetadata] | None:
    """`target`'s production version and its metadata; None without one."""
    registry = Registry.of_target(services.store, services.settings, target)
    pointer, _ = registry.production()
    if pointer is None:
        return None
    return pointer.version, registry.metadata(pointer.version)


def _served(
    services: Services,
    as_of: dt.datetime,
    target: str,
    meta: ModelMetadata,
    frame: pd.DataFrame,
) -> dict[str, Any]:
    """How the forecasts of `target`'s production version (`meta`) are doing as served (the
    model combined with the baselines; `frame`: its rows of `signals.accuracy`), beside
    the model's own skill, the weights serving it, the horizon groups the gate started it
    served as persistence at, and the places new to the version, reported apart."""
    version = meta.version
    seen = frame[~frame["new_place"]]
    out: dict[str, Any] = {"target": target, "version": version, **_scores(seen, "served_abs")}
    out["model_ratio"] = _scores(seen, "model_abs")["ratio"]
    out["horizons"] = {
        str(h): {**_scores(g, "served_abs"), "model_ratio": _scores(g, "model_abs")["ratio"]}
        for h, g in seen.groupby("horizons")
    }
    held = [g.group for g in meta.metrics.holdout.served_as_persistence]
    if held:  # the gate's groups, as the monitor's are: the weights say if it still holds
        out["served_as_persistence"] = held
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
            combination.group_name((lo, hi)): {
                str(e): rounded(w)
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
    production = {t: p for t in targets if (p := _production(services, t)) is not None}
    # One read of the window serves both: every version's record and what is served.
    cutoffs = {t: (v, meta.trained_through) for t, (v, meta) in production.items()}
    frame = signals.accuracy(services.warehouse, as_of, targets, cutoffs)
    versions = _history(signals.by_version(frame))
    served = [
        _served(services, as_of, t, meta, signals.served(frame, t, v))
        for t, (v, meta) in production.items()
    ]
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
    if top.get("served_as_persistence"):
        groups = ", ".join(top["served_as_persistence"])
        detail += f"; served as persistence from its first hour at {groups} h (the gate)"
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
        "mae": rounded(mae),
        "model_mae": rounded(model),
        "ratio": rounded(model / mae if mae > 0 else None),
    }
