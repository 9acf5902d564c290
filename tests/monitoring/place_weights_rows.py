"""A `place_combination_weights` row as predict writes it, for the monitor's tests: each
test states only the weights and times it is about."""

from __future__ import annotations

import datetime as dt
from typing import Any


def place_weights_row(
    target: str,
    place: str,
    at: dt.datetime,
    group: str,
    weights: tuple[float, float, float],
    *,
    model_version: str = "v1",
    gap: float = 0.0,
    started_at: dt.datetime | None = None,
    verified: int = 0,
    offsets: tuple[float, float] = (0.0, 0.0),
) -> dict[str, Any]:
    """One place's state for one horizon group at issue time `at`: (model, persistence,
    seasonal naive) weights, equal losses, its own (lower, upper) interval offsets,
    verified through two hours before `at`."""
    m, p, s = weights
    return {
        "target": target,
        "as_of": at,
        "location_id": place,
        "horizon_group": group,
        "shard": "0/1",
        "model_version": model_version,
        "weight_model": m,
        "weight_persistence": p,
        "weight_seasonal_naive": s,
        "loss_model": 1.0,
        "loss_persistence": 1.0,
        "loss_seasonal_naive": 1.0,
        "gap": gap,
        "lower_offset": offsets[0],
        "upper_offset": offsets[1],
        "verified_through": at - dt.timedelta(hours=2),
        "started_at": at if started_at is None else started_at,
        "verified": verified,
        "run_id": "pred",
        "created_at": at,
    }
