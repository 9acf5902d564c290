"""One shard's prediction as the serving snapshot document, and its encoding to bytes.

The document's shape is `common.forecasting.snapshot.Snapshot`; here it is built
column-wise, the large maps as pre-encoded JSON text, because at 10,000 locations a
pydantic object per location costs seconds (the api validates the document on load).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.core.catalog import provenance_of
from common.core.schema import VARIABLES
from common.core.timeutil import UTC, iso
from common.forecasting.combination import EXPERTS
from common.forecasting.features import FeatureSpec
from common.forecasting.place_weights import PlaceWeights
from common.forecasting.registry import Loaded, model_name_for
from common.forecasting.snapshot import SCHEMA_VERSION, LocationInfo
from common.predict.reads import recent_accuracy, recent_hindcast
from common.runtime.services import Services

RECENT_HOURS = 48  # observations shown beside each forecast in the snapshot (dashboard)


@dataclass(frozen=True)
class Prediction:
    """One shard's result, what is written and served: the model, the issue time, the run,
    the shard's active places, its forecast rows, the recent target values shown beside
    them and the locations skipped with their reasons."""

    loaded: Loaded
    spec: FeatureSpec
    as_of: dt.datetime
    run_id: str
    active: pd.DataFrame
    frame: pd.DataFrame
    obs: pd.DataFrame
    skipped: list[tuple[str, str]]
    shard: int = 0
    shards: int = 1
    place_weights: PlaceWeights | None = None  # the places' own combination weights


class RawJSON(str):
    """JSON text already encoded, placed as is by `encode_snapshot`."""


def _rows_json(matrix: np.ndarray, digits: int) -> list[str]:
    """Each row of a float matrix as a JSON array (NaN -> null), by pandas' C encoder:
    json.dumps of the 1.2 M numbers of a 10,000-location snapshot costs ~0.5 s, this ~0.1."""
    if matrix.size == 0:
        return ["[]"] * len(matrix)
    text = pd.DataFrame(matrix).to_json(orient="values", double_precision=digits)
    return ["[" + row + "]" for row in text[2:-2].split("],[")]


def build_snapshot(services: Services, prediction: Prediction) -> dict[str, Any]:
    """What the api serves (the JSON of `common.forecasting.snapshot.Snapshot`): per location the
    forecast arrays, the recent values and the recent accuracy.

    Built column-wise, the large maps as pre-encoded JSON text: at 10,000 locations a
    pydantic object per location costs seconds; the api validates the document on load.
    """
    p = prediction
    spec, as_of, active = p.spec, p.as_of, p.active
    H = spec.horizon
    ids, forecasts = _forecasts_json(p)
    start = as_of - dt.timedelta(hours=RECENT_HOURS - 1)
    observations = _observations_json(p, ids, start)
    cols_info = [c for c in LocationInfo.model_fields if c in active.columns]
    info = active[cols_info].astype(object).where(active[cols_info].notna(), None)
    if "source" in active.columns:  # labelled from the source, so CAMS shows as model data
        info["provenance"] = [provenance_of(s) for s in active["source"]]
    # The network's recent accuracy, once a run: shard 0 computes it over every location and
    # the other parts carry none (each shard's own would read the same whole partitions:
    # shards are hashed, so its ids cannot prune a table clustered by location_id).
    accuracy = recent_accuracy(services, spec.target, as_of) if p.shard == 0 else None
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(dt.datetime.now(UTC)),
        "issued_at": iso(as_of),
        "run_id": p.run_id,
        "model_name": model_name_for(
            services.settings.model_name, spec.target, services.settings.default_target
        ),
        "model_version": p.loaded.version,
        "target": spec.target,
        "unit": VARIABLES[spec.target].unit,
        "horizon": H,
        "shard": p.shard,
        "shards": p.shards,
        "locations": info.to_dict("records"),
        "forecasts": forecasts,
        "observations": observations,
        "accuracy": None if accuracy is None else accuracy.model_dump(mode="json"),
        "skipped": [{"location_id": i, "reason": r} for i, r in p.skipped],
        "hindcast": recent_hindcast(services, spec.target, as_of, start, ids, min(24, H)),
        "combination": _place_combination(p.place_weights),
    }


def _place_combination(weights: PlaceWeights | None) -> dict[str, Any] | None:
    """The places' own weights as the snapshot carries them to the api."""
    if weights is None or weights.state.empty:
        return None
    return {
        "experts": list(EXPERTS),
        "groups": weights.groups,
        "weights": weights.by_place(),
        "offsets": weights.offsets_by_place(),
    }


def _forecasts_json(p: Prediction) -> tuple[list[str], RawJSON]:
    """The forecast locations in order, and the map location -> forecast arrays as JSON."""
    H = p.spec.horizon
    frame = p.frame
    issued, version = json.dumps(iso(p.as_of)), json.dumps(p.loaded.version)
    ids: list[str] = []
    forecasts = RawJSON("{}")
    if len(frame):
        ordered = frame.sort_values(["location_id", "horizon_h"])
        ids = [str(i) for i in ordered["location_id"].to_numpy()[::H]]
        cols = {
            c: ordered[c].to_numpy(float).reshape(-1, H)
            for c in ("yhat", "yhat_lower", "yhat_upper")
        }
        if any(np.isnan(m).any() for m in cols.values()):
            raise ValueError("the model produced NaN forecasts; nothing published")
        enc = {c: _rows_json(m, 3) for c, m in cols.items()}
        forecasts = RawJSON(
            "{"
            + ",".join(
                f'{json.dumps(loc)}:{{"issued_at":{issued},"model_version":{version},'
                f'"yhat":{enc["yhat"][i]},"yhat_lower":{enc["yhat_lower"][i]},'
                f'"yhat_upper":{enc["yhat_upper"][i]}}}'
                for i, loc in enumerate(ids)
            )
            + "}"
        )
    return ids, forecasts


def _observations_json(p: Prediction, ids: list[str], start: dt.datetime) -> RawJSON:
    """The map location -> hourly target values since `start` as JSON (forecast ones only)."""
    obs, as_of = p.obs, p.as_of
    if obs.empty or not ids:
        return RawJSON("{}")
    ts = pd.to_datetime(obs["ts"], utc=True)
    recent = obs[(ts >= pd.Timestamp(start)) & obs["location_id"].isin(ids)]
    wide = recent.pivot_table(
        index="location_id", columns="ts", values=p.spec.target, aggfunc="last"
    )
    wide.columns = pd.to_datetime(wide.columns, utc=True)
    wide = wide.reindex(columns=pd.date_range(start, as_of, freq="h"))
    first = json.dumps(iso(start))
    rows = _rows_json(wide.to_numpy(float), 1)
    return RawJSON(
        "{"
        + ",".join(
            f'{json.dumps(str(loc))}:{{"start":{first},"values":{row}}}'
            for loc, row in zip(wide.index, rows, strict=True)
        )
        + "}"
    )


def encode_snapshot(snapshot: dict[str, Any]) -> bytes:
    """The snapshot as compact JSON; `RawJSON` values are already encoded."""
    parts = []
    for key, value in snapshot.items():
        text = (
            value
            if isinstance(value, RawJSON)
            else json.dumps(value, separators=(",", ":"), allow_nan=False)
        )
        parts.append(f"{json.dumps(key)}:{text}")
    return ("{" + ",".join(parts) + "}").encode()
