"""The serving snapshot: what predict publishes and the api serves (`serving/latest.json`,
one snapshot per forecast target: see `snapshot_key`).

The api answers every lookup from the snapshot held in memory, so it never queries the
warehouse and its service account needs only read access to the bucket. Predict writes it
atomically after each run. When predict runs as N shards, each shard publishes its own part
(`snapshot_key`) with the same document shape for its locations only: the api loads the
part of the location asked for, and a failed shard leaves its last good part served.
Forecasts are stored per location as arrays indexed by horizon - 1 (target time =
issued_at + h hours), which keeps 10,000 locations x 24 hours to a few megabytes.

Light on purpose: only pydantic, so the api's cold start stays cheap.
"""

from __future__ import annotations

import datetime as dt
import json
import re

from pydantic import BaseModel, Field

SNAPSHOT_KEY = "serving/latest.json"


def snapshot_key(
    shard: int = 0, shards: int = 1, target: str | None = None, default_target: str | None = None
) -> str:
    """Where predict shard `shard` of `shards` publishes its part of `target`'s snapshot.

    The one key rule predict, the api and the health status share. The default target
    (`target` None or equal to `default_target`) keeps the keys a single-target deployment
    has always used: one shard the one object (`serving/latest.json`), N shards N objects
    under a prefix named for N, so parts written with another shard count are never mixed
    in. Every other target has the same layout under `serving/<target>/`.
    """
    prefix = _prefix(target, default_target)
    if shards <= 1:
        return f"{prefix}/latest.json"
    return f"{prefix}/shards-{shards}/{shard:03d}.json"


def intervals_key(target: str | None = None, default_target: str | None = None) -> str:
    """Where predict publishes `target`'s current adaptive interval offsets (one small
    object for every shard: the api's online predictions read it)."""
    return f"{_prefix(target, default_target)}/intervals.json"


def _prefix(target: str | None, default_target: str | None) -> str:
    return "serving" if target is None or target == default_target else f"serving/{target}"


def snapshot_keys(
    shards: int, target: str | None = None, default_target: str | None = None
) -> list[str]:
    """Every part of `target`'s snapshot the api serves when predict runs as `shards` shards."""
    return [snapshot_key(k, shards, target, default_target) for k in range(max(shards, 1))]


ISSUED_AT = re.compile(rb'"issued_at":"([^"]+)"')


def issued_at_of(data: bytes) -> str:
    """The issue time of a published snapshot (or part): the top-level `issued_at`, which
    predict writes within the first few hundred bytes, so a 10 MB part need not be parsed."""
    head = ISSUED_AT.search(data[:1024])
    if head is None:
        return str(json.loads(data)["issued_at"])
    return head.group(1).decode()


COUNTS = re.compile(rb'"counts":(\{[^{}]*\})')
HEAD_BYTES = 4096  # a part's top-level fields before its maps: ~400 bytes, with room


def counts_of(head: bytes) -> PartCounts | None:
    """A part's `counts` from its first HEAD_BYTES, which predict writes before the maps
    (None when absent: a part published before them; the caller then parses the part)."""
    found = COUNTS.search(head.split(b'"locations":', 1)[0])  # the top level's, no map's
    return None if found is None else PartCounts.model_validate_json(found.group(1))


SCHEMA_VERSION = 1


class LocationInfo(BaseModel):
    location_id: str
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    source: str | None = None
    timezone: str | None = None
    provenance: str | None = Field(
        None,
        description="What the place's observed values are: measurement (monitors) or model "
        "(model output, e.g. CAMS via open-meteo, not a measurement).",
    )


class LocationForecast(BaseModel):
    """One location's forecast from one predict run; index i is horizon i + 1."""

    issued_at: dt.datetime
    model_version: str
    yhat: list[float]
    yhat_lower: list[float]
    yhat_upper: list[float]


class RecentObservations(BaseModel):
    """The target's recent hourly values up to issued_at (None where missing)."""

    start: dt.datetime  # ts of values[0]; values are hourly
    values: list[float | None]


class HorizonAccuracy(BaseModel):
    horizon_h: int
    n: int
    mae: float
    rmse: float
    coverage: float = Field(description="Share of actuals inside [yhat_lower, yhat_upper].")
    persistence_mae: float | None = Field(
        None, description="MAE of persistence (the value observed at issue time) on the same hours."
    )
    cams_n: int = Field(0, description="Of the n, the forecasts with a CAMS forecast as issued.")
    cams_mae: float | None = Field(
        None, description="MAE of the CAMS forecast on those cams_n hours (None when none)."
    )
    cams_model_mae: float | None = Field(
        None, description="The model's MAE on the same cams_n hours: aircast vs CAMS."
    )


class Accuracy(BaseModel):
    """Accuracy of forecasts whose target hour lies in the window (forecast_accuracy's rows)."""

    window_start: dt.datetime
    window_end: dt.datetime
    model_version: str | None = None  # None: all versions pooled
    network: bool = Field(
        False,
        description="Over every location of the network: what predict publishes, in shard "
        "0's part when sharded (the other parts carry none). False: one shard's locations "
        "only (parts published before the network's accuracy moved to shard 0).",
    )
    by_horizon: list[HorizonAccuracy] = []
    by_location: dict[str, float] = Field(default_factory=dict, description="MAE per location")


class Hindcast(BaseModel):
    """What was forecast `horizon_h` hours ahead (p50) for each recent hour, aligned with
    RecentObservations (None where no such forecast was issued): past forecasts against what
    was observed."""

    horizon_h: int
    start: dt.datetime
    values: list[float | None]


class Skipped(BaseModel):
    location_id: str
    reason: str


class StaleForecast(BaseModel):
    """A location the last run had to skip, served its previous forecast (issued earlier,
    still covering future hours) rather than none."""

    location_id: str
    issued_at: dt.datetime


class PartCounts(BaseModel):
    """What the health status needs of a part, written before its large maps so that it is
    read from the part's first kilobytes (`counts_of`), not by parsing the whole part."""

    stale: int = Field(description="Locations served their previous forecast (`stale`).")
    missing: int = Field(description="Skipped locations with no forecast served at all.")


class PlaceCombination(BaseModel):
    """The places' own weights of the served median's experts (those with a state; any
    other place is served the network's, `intervals_key`), as predict served them: the
    api's online predictions for a place combine with the same numbers."""

    experts: list[str]
    groups: list[tuple[int, int]] = Field(description="(first, last) horizon of each group.")
    weights: dict[str, list[list[float]]] = Field(
        default_factory=dict, description="location_id -> per group, each expert's weight."
    )
    offsets: dict[str, list[list[float]]] = Field(
        default_factory=dict,
        description="location_id -> per group, the place's own (lower, upper) interval "
        "offsets in log units, added to the target's.",
    )


class Snapshot(BaseModel):
    schema_version: int = SCHEMA_VERSION
    generated_at: dt.datetime
    issued_at: dt.datetime
    run_id: str
    model_name: str
    model_version: str
    target: str
    unit: str
    horizon: int
    shard: int = Field(0, description="The predict shard this part holds (0 .. shards-1).")
    shards: int = Field(1, description="How many parts predict publishes.")
    counts: PartCounts | None = Field(
        None, description="Counted when published (None in parts published before them)."
    )
    locations: list[LocationInfo]
    forecasts: dict[str, LocationForecast]
    observations: dict[str, RecentObservations] = Field(default_factory=dict)
    accuracy: Accuracy | None = None
    skipped: list[Skipped] = []
    stale: list[StaleForecast] = Field(
        default_factory=list,
        description="Skipped locations still served their previous forecast, with its issue time.",
    )
    hindcast: dict[str, Hindcast] = Field(default_factory=dict)
    combination: PlaceCombination | None = Field(
        None, description="The places' own combination weights (None: the network's serve all)."
    )
