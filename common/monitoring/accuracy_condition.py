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
    the model's own skill, the weights serving it (the network's, and a summary of the
    places' own), the horizon groups the gate started it served as persistence at, and
    the forecasts of places served the network's weights (no weights of their own when
    issued: `new_places`), reported apart until their own weights serve them."""
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
    places = _place_weights(signals.place_weights(services.warehouse, target, as_of))
    if places:
        out["place_weights"] = places
    return out


def _place_weights(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """`signals.place_weights`'s rows by horizon group: how many places have weights of
    their own, how many each expert leads, the model's weight across them and their own
    band offsets (in the groups' order: 1-3, 4-12, 13-24)."""
    frame = frame.sort_values("horizon_group", key=lambda g: g.str.split("-").str[0].astype(int))
    return {
        str(r.horizon_group): {
            "places": int(r.places),
            "leading": {e: int(getattr(r, f"lead_{e}")) for e in combination.EXPERTS},
            "model_weight": {
                "min": rounded(r.model_min),
                "mean": rounded(r.model_mean),
                "max": rounded(r.model_max),
            },
            "band_offsets": {
                "lower_mean": rounded(r.lower_offset_mean),
                "upper_mean": rounded(r.upper_offset_mean),
                "at_clip": int(r.offsets_at_clip),
            },
        }
        for r in frame.itertuples()
    }


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


def _place_weights_text(places: dict[str, dict[str, Any]] | None) -> str:
    if not places:
        return ""
    n = max(g["places"] for g in places.values())
    leads = ", ".join(
        f"{group} h " + "/".join(str(g["leading"][e]) for e in combination.EXPERTS)
        for group, g in places.items()
    )
    clipped = max(g.get("band_offsets", {}).get("at_clip", 0) for g in places.values())
    stuck = f"; {clipped} places' own band offsets at the clip" if clipped else ""
    return (
        f"; {n} places on their own weights, led by model/persistence/seasonal naive {leads}"
        + stuck
    )


def accuracy(services: Services, as_of: dt.datetime) -> HealthCondition:
    """Judges what is served now: each target's production version, its forecasts as
    served (the combination), with the model's own ratio and the weights beside it, and
    the forecasts of places served the network's weights apart; earlier versions with
    forecasts in the window are listed as history, never judged."""
    targets = services.settings.forecast_targets
    production = {t: p for t in targets if (p := _production(services, t)) is not None}
    # One read of the window serves both: every version's record and what is served.
    frame = signals.accuracy(services.warehouse, as_of, targets)
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
        apart = sum(s.get("new_places", {}).get("n", 0) for s in served)
        if apart:  # the first hours of a network: no place has weights of its own yet
            detail += (
                f" at places on their own weights ({apart} more at places on the network's, "
                "reported apart)"
            )
        if history:
            detail += f" (earlier versions, history only: {', '.join(sorted(history))})"
        return build_condition("accuracy", None, detail, **extra)
    top = max(counted, key=lambda s: s["ratio"])
    state = th.LEVELS["accuracy"].state(top["ratio"])
    low = [s for s in counted if (s["coverage"] or 1) < th.COVERAGE_WARN_BELOW]
    if low and state == "ok":
        state = "warn"
    detail = _detail(top, versions.get(top["version"], {}).get("cams"))
    return build_condition("accuracy", top["ratio"], detail, state=state, **extra)


def _detail(top: dict[str, Any], cams: dict[str, Any] | None) -> str:
    """The judged version's line: as served, the model alone, the band, CAMS, the gate's
    groups, the weights (the network's and the places'), and the new places apart."""
    detail = (
        f"{top['target']} {top['version']} as served: MAE {top['mae']:.2f} vs persistence "
        f"{top['persistence_mae']:.2f} (ratio {top['ratio']:.2f}; the model alone "
        f"{top['model_ratio'] or float('nan'):.2f}) on {top['n']} forecasts in "
        f"{th.ACCURACY_WINDOW_HOURS} h"
    )
    if top["coverage"] is not None:
        detail += f"; 80 % band held {top['coverage']:.0%}"
    if cams is not None:
        detail += (
            f"; vs CAMS on {cams['n']} forecasts with one: MAE {cams['model_mae']:.2f} vs "
            f"{cams['mae']:.2f} (ratio {cams['ratio']:.2f})"
        )
    if top.get("served_as_persistence"):
        groups = ", ".join(top["served_as_persistence"])
        detail += f"; served as persistence from its first hour at {groups} h (the gate)"
    detail += _weights_text(top.get("weights"))
    detail += _place_weights_text(top.get("place_weights"))
    new = top.get("new_places")
    if new and new["ratio"] is not None:
        detail += (
            f"; places on the network's weights (none of their own yet): ratio "
            f"{new['ratio']:.2f} on {new['n']} forecasts"
        )
    return detail


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
