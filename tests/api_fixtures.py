"""Serving snapshots and model registry entries for the api tests, built with the real models."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import random
from collections.abc import Iterator
from pathlib import Path

from common.forecasting.snapshot import (
    SNAPSHOT_KEY,
    Accuracy,
    Hindcast,
    HorizonAccuracy,
    LocationForecast,
    LocationInfo,
    RecentObservations,
    Skipped,
    Snapshot,
)
from common.forecasting.versions import METADATA_FILE, ModelMetadata, pointer_key, version_key
from common.scheduling import stack as localstack
from common.storage import ArtifactStore
from tests.contracts import stored_metadata

ISSUED = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
LOCATIONS = ("beijing-dongsi", "beijing-tiantan", "singapore-central")
# Where the named locations are (the real stations' places and time zones).
PLACES = {
    "beijing-dongsi": (39.929, 116.417, "Asia/Shanghai"),
    "beijing-tiantan": (39.886, 116.407, "Asia/Shanghai"),
    "singapore-central": (1.29, 103.85, "Asia/Singapore"),
    "delhi-anand-vihar": (28.647, 77.316, "Asia/Kolkata"),
    "berlin-mitte": (52.52, 13.405, "Europe/Berlin"),
    "london-marylebone": (51.523, -0.155, "Europe/London"),
    "los-angeles-downtown": (34.051, -118.244, "America/Los_Angeles"),
    "mexico-city-merced": (19.425, -99.119, "America/Mexico_City"),
    "sao-paulo-centro": (-23.548, -46.636, "America/Sao_Paulo"),
    "lagos-ikeja": (6.602, 3.351, "Africa/Lagos"),
    "sydney-randwick": (-33.917, 151.241, "Australia/Sydney"),
    "tokyo-shinjuku": (35.694, 139.703, "Asia/Tokyo"),
}
# A network of real places (named, placed and zoned as the cities are; values synthetic).
WORLD = tuple(PLACES)


def make_snapshot(
    issued_at: dt.datetime = ISSUED,
    horizon: int = 24,
    locations: tuple[str, ...] = LOCATIONS,
    skipped: tuple[str, ...] = ("retired-station",),
    model_version: str = "20261120T0000-abc123",
    run_id: str = "run-1",
) -> Snapshot:
    """A snapshot shaped like predict's: a daily cycle per location, widening intervals."""
    forecasts, observations, hindcast = {}, {}, {}
    for k, loc in enumerate(locations):
        base = 30.0 + 15 * (k % 7)

        def level(t: int, base: float = base) -> float:
            return round(base + 10 * math.sin(2 * math.pi * t / 24), 3)

        yhat = [level(h) for h in range(1, horizon + 1)]
        forecasts[loc] = LocationForecast(
            issued_at=issued_at,
            model_version=model_version,
            yhat=yhat,
            yhat_lower=[round(y - 2 - 0.3 * h, 3) for h, y in enumerate(yhat)],
            yhat_upper=[round(y + 2 + 0.4 * h, 3) for h, y in enumerate(yhat)],
        )
        values: list[float | None] = [level(t) + 1.5 for t in range(-47, 1)]
        values[10] = None  # a missing hour
        observations[loc] = RecentObservations(
            start=issued_at - dt.timedelta(hours=47), values=values
        )
        said: list[float | None] = [round(level(t) - 2.0, 3) for t in range(-47, 1)]
        said[:5] = [None] * 5  # before the first day-ahead forecast
        hindcast[loc] = Hindcast(
            horizon_h=24, start=issued_at - dt.timedelta(hours=47), values=said
        )
    infos = []
    for i, loc in enumerate(locations + skipped):
        lat, lon, tz = PLACES.get(loc) or (
            (40.0 + i, 116.0 + i, "UTC")
            if i < 8
            else (
                round(random.Random(i).uniform(-50, 60), 3),
                round(random.Random(f"lon{i}").uniform(-170, 175), 3),
                "UTC",
            )
        )
        infos.append(
            LocationInfo(
                location_id=loc,
                name=loc.replace("-", " ").title(),
                latitude=lat,
                longitude=lon,
                source="synthetic",
                timezone=tz,
            )
        )
    return Snapshot(
        generated_at=issued_at + dt.timedelta(minutes=3),
        issued_at=issued_at,
        run_id=run_id,
        model_name="aircast",
        model_version=model_version,
        target="pm2_5",
        unit="µg/m³",
        horizon=horizon,
        locations=infos,
        forecasts=forecasts,
        observations=observations,
        accuracy=Accuracy(
            window_start=issued_at - dt.timedelta(days=7),
            window_end=issued_at,
            model_version=None,
            by_horizon=[
                HorizonAccuracy(
                    horizon_h=h,
                    n=100 + h,
                    mae=3 + 0.2 * h,
                    rmse=4 + 0.3 * h,
                    coverage=0.8 - 0.005 * h,
                    persistence_mae=3.5 + 0.45 * h,
                )
                for h in range(1, horizon + 1)
            ],
            by_location={loc: 4.0 + i for i, loc in enumerate(locations)},
        ),
        skipped=[Skipped(location_id=s, reason="too little history") for s in skipped],
        hindcast=hindcast,
    )


def publish(store: ArtifactStore, snapshot: Snapshot) -> None:
    """Write the snapshot where predict does."""
    store.put(SNAPSHOT_KEY, snapshot.model_dump_json().encode())


def promote(
    store: ArtifactStore, model_name: str = "aircast", version: str = "v1"
) -> ModelMetadata:
    """A production pointer and metadata laid out as the registry writes them (the
    metadata a train run wrote, renamed)."""
    metadata = stored_metadata().model_copy(update={"version": version, "model_name": model_name})
    store.put_json(version_key(model_name, version, METADATA_FILE), metadata.to_json())
    store.put_json(
        pointer_key(model_name), {"version": version, "promoted_at": "2026-11-20T01:00:00Z"}
    )
    return metadata


@contextlib.contextmanager
def served_api(
    home: Path, snapshot: Snapshot | None = None, settings: dict[str, str] | None = None
) -> Iterator[str]:
    """The api served as `aircast serve` serves it, on a free loopback port, with a snapshot
    (and any further AIRCAST_* `settings`)."""
    from common.storage.local import LocalStore

    publish(LocalStore(home / "artifacts"), snapshot or make_snapshot())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRCAST_")}
    env |= {"AIRCAST_BACKEND": "local", "AIRCAST_HOME": str(home), **(settings or {})}
    with localstack.serve(["api"], port=0, env=env, home=home) as urls:
        yield urls["api"]
