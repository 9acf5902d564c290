"""Locations: read from a TOML file (see common/runtime/locations.toml) and registered in
the append-only `locations` table, read through the `current_locations` view (the newest
row per location_id).

Registration appends only what is new or changed, so running it every hour adds nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
import zoneinfo
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.core.catalog import check_source
from common.core.config import ConfigError, Settings
from common.core.errors import NotFound, validation_message
from common.core.schema import LOCATION_ID_PATTERN
from common.sources.base import Location
from common.storage import ArtifactStore, ObjectMissing
from common.warehouse import Warehouse

DEFAULT_FILE = Path(__file__).with_name("locations.toml")
STORE_KEY = "imports/locations.toml"  # a deployment's own places, in the artifact store
LOCATION_ID = re.compile(LOCATION_ID_PATTERN)
COLUMNS = [
    "location_id",
    "name",
    "latitude",
    "longitude",
    "source",
    "timezone",
    "active",
    "sensors",
]


class LocationsError(ConfigError):
    """The locations file is missing or invalid (the message says where)."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    source: str
    timezone: str = "UTC"
    active: bool = True

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_location_id(v)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        return check_source(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


def check_location_id(value: str) -> str:
    if not LOCATION_ID.match(value):
        raise ValueError(
            f"invalid location id {value!r}: lowercase letters, digits, '-', '_', '.' (max 63)"
        )
    return value


def load_file(path: Path | None = None) -> list[Location]:
    """Every location in the file, validated; errors name the entry and the field."""
    path = Path(path) if path else DEFAULT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LocationsError(f"locations file {path} not found") from None
    return parse(text, str(path))


def parse(text: str, path: str) -> list[Location]:
    """The locations of a TOML text (`path` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LocationsError(f"{path}: {exc}") from None
    out: list[Location] = []
    for i, raw in enumerate(data.get("location", [])):
        try:
            e = _Entry.model_validate(raw)
        except ValidationError as exc:
            _, problem = validation_message(exc, where="entry")
            raise LocationsError(f"{path}: location #{i + 1} {problem}") from None
        out.append(Location(e.id, e.name, e.latitude, e.longitude, e.source, e.timezone, e.active))
    ids = [loc.location_id for loc in out]
    if len(ids) != len(set(ids)):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise LocationsError(f"{path}: duplicate location ids {dupes}")
    return out


def for_source(source: str, path: Path | None = None) -> list[Location]:
    return [loc for loc in load_file(path) if loc.source == source]


def configured(settings: Settings, store: ArtifactStore | None = None) -> list[Location]:
    """The places this deployment ingests, from the first of: AIRCAST_LOCATIONS_FILE (a file
    the operator names), `imports/locations.toml` in the artifact store (how a deployed user
    brings their own places: upload it, or set Terraform's `locations_toml`; the next ingest
    reads it, no rebuild), the packaged common/runtime/locations.toml."""
    if settings.locations_file is not None:
        return load_file(settings.locations_file)
    if store is not None:
        try:
            text = store.get(STORE_KEY)
        except ObjectMissing:
            text = None
        if text is not None:
            where = f"gs://{settings.bucket}/{STORE_KEY}" if settings.bucket else STORE_KEY
            try:
                return parse(text.decode("utf-8"), where)
            except UnicodeDecodeError:
                raise LocationsError(f"{where}: not UTF-8 text") from None
    return load_file()


def current(warehouse: Warehouse) -> pd.DataFrame:
    """The current row of every registered location."""
    return warehouse.query("SELECT * FROM current_locations ORDER BY location_id")


def register(
    warehouse: Warehouse, locations: list[Location], landed: set[str] | None = None
) -> int:
    """Append the locations that are new or changed; return how many rows were written.

    With `landed` (the ids a run has just landed rows for), a place not registered yet is
    registered only once its first row lands: a fetch that reached nothing must not make
    a place active (freshness would alert on it, predict report it missing) for good.
    """
    if not locations:
        return 0
    wanted = pd.DataFrame([{c: getattr(loc, c) for c in COLUMNS} for loc in locations])
    wanted = wanted.drop_duplicates("location_id", keep="last")
    have = current(warehouse)
    if landed is not None:
        known = set(have["location_id"]) if not have.empty else set()
        wanted = wanted[wanted["location_id"].isin(known | landed)]
        if wanted.empty:
            return 0
    if not have.empty:
        merged = wanted.merge(have[COLUMNS], on="location_id", how="left", suffixes=("", "_old"))
        same = pd.Series(True, index=merged.index)
        for c in COLUMNS[1:]:
            old, new = merged[f"{c}_old"], merged[c]
            same &= (old == new) | (old.isna() & new.isna())
        wanted = wanted[~same.to_numpy()]
    if wanted.empty:
        return 0
    wanted = wanted.assign(updated_at=dt.datetime.now(dt.UTC))
    return warehouse.append("locations", wanted)


def retire_missing(warehouse: Warehouse, source: str, configured: set[str]) -> int:
    """Mark active locations of `source` that left the config inactive (one row each).

    Removing a place from the locations file stops predict forecasting it; its history
    stays. Putting it back re-activates it (a changed row, appended by `register`).
    """
    have = current(warehouse)
    if have.empty:
        return 0
    gone = have[
        (have["source"] == source)
        & have["active"].astype(bool)
        & ~have["location_id"].isin(configured)
    ]
    if gone.empty:
        return 0
    rows = gone[COLUMNS].assign(active=False, updated_at=dt.datetime.now(dt.UTC))
    return warehouse.append("locations", rows)


def _require(warehouse: Warehouse, ids: list[str]) -> pd.DataFrame:
    """The current rows of `ids`; a 404 naming the unknown ones."""
    have = current(warehouse)
    unknown = sorted(set(ids) - set(have["location_id"]))
    if unknown:
        raise NotFound(f"unknown locations: {', '.join(unknown)}", field="location_id")
    return have[have["location_id"].isin(ids)]


def set_active(warehouse: Warehouse, ids: list[str], active: bool) -> int:
    """Activate or deactivate places (one appended row each that changes): an inactive
    place is neither forecast nor watched by freshness; its history stays."""
    rows = _require(warehouse, ids)
    rows = rows[rows["active"].astype(bool) != active]
    if rows.empty:
        return 0
    out = rows[COLUMNS].assign(active=active, updated_at=dt.datetime.now(dt.UTC))
    return warehouse.append("locations", out)


def remove(warehouse: Warehouse, ids: list[str]) -> int:
    """Delete places from `locations` (every row of them; their observations and forecasts
    stay): for places registered by mistake, e.g. by a fetch that never reached any data.
    A place still in the locations file comes back with its first landed row."""
    rows = _require(warehouse, ids)
    warehouse.query("DELETE FROM locations WHERE location_id IN UNNEST(@ids)", {"ids": ids})
    return len(rows)
