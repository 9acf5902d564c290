"""The drift condition: how far the production version's recent serving inputs are from its
training data (PSI per input against the version's stored reference, judged against the
spread its own training weeks showed; an adversarial AUC overall). See
`common.monitoring.drift` for the measures."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from common.forecasting.features import grid_columns
from common.forecasting.registry import Registry
from common.forecasting.versions import NaturalSpread
from common.monitoring import drift, signals
from common.monitoring import thresholds as th
from common.monitoring.conditions import build_condition
from common.monitoring.health import HealthCondition
from common.runtime import locations as locations_mod
from common.runtime.services import Services
from common.storage.base import ObjectMissing


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
