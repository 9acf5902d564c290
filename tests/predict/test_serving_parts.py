"""The api holds predict's snapshot parts compactly (`common.serving.part.Part`: the part's
bytes and an index) and answers the same bytes as from the parts parsed whole into
`Snapshot`s: the reference here renders each answer from the parsed parts, as the api did
before, and every route that reads a part must match it byte for byte."""

from __future__ import annotations

import datetime as dt
import gc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from common.core.aqi import get_scheme
from common.forecasting.snapshot import (
    Hindcast,
    LocationForecast,
    LocationInfo,
    RecentObservations,
    Snapshot,
    snapshot_key,
)
from common.predict.job import PredictRequest, run_predict
from common.runtime import services
from common.runtime.services import get_services
from common.serving import places
from common.serving.api import create_app
from common.serving.models import ForecastsResponse, LocationsResponse
from common.serving.part import Part
from common.serving.render import encode, entry, location_forecast
from tests.predict.test_predict import T, location_ids

SHARDS = 2
PER_LOCATION = (LocationForecast, LocationInfo, RecentObservations, Hindcast)


def _old(snapshot: Snapshot) -> Any:
    """A parsed part in the shape `location_forecast` reads (what the api held before)."""
    return SimpleNamespace(
        head=snapshot,
        forecasts=snapshot.forecasts,
        observations=snapshot.observations,
        hindcast=snapshot.hindcast,
    )


@pytest.fixture
def parts(home: Path, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Two predict runs as SHARDS shards (the second serves the first's hindcasts)."""
    monkeypatch.setenv("AIRCAST_PREDICT_SHARDS", str(SHARDS))
    services.reset()
    for at in (T - dt.timedelta(hours=1), T):
        for k in range(SHARDS):
            run_predict(PredictRequest(as_of=at, shard=k, shards=SHARDS), get_services())
    store = get_services().store
    return [store.get(snapshot_key(k, SHARDS)) for k in range(SHARDS)]


def test_a_part_reads_back_exactly_what_parsing_it_whole_gives(parts: list[bytes]):
    for raw in parts:
        whole, part = Snapshot.model_validate_json(raw), Part(raw)
        emptied = {"locations": [], "forecasts": {}, "observations": {}, "hindcast": {}}
        if whole.combination is not None:
            emptied["combination"] = whole.combination.model_copy(update={"weights": {}})
        assert part.head == whole.model_copy(update=emptied)
        assert part.locations() == whole.locations
        assert [part.location(row) for row in range(len(part))] == whole.locations
        assert dict(part.forecasts) == whole.forecasts and whole.forecasts
        assert dict(part.observations) == whole.observations and whole.observations
        assert dict(part.hindcast) == whole.hindcast
        for loc in whole.locations:
            assert part.is_location(loc.location_id)
            assert part.location_of(loc.location_id) == loc
        assert not part.is_location("nowhere") and "nowhere" not in part.forecasts


def test_the_api_answers_the_bytes_the_parsed_parts_gave(parts: list[bytes]):
    snaps = [Snapshot.model_validate_json(raw) for raw in parts]
    settings = get_services().settings
    scheme = get_scheme(settings.aqi_scheme)
    client = create_app(settings, get_services().store).test_client()
    ids = location_ids()
    assert len(ids) >= 4
    of = {loc: s for s in snaps for loc in s.forecasts}
    assert set(of) == set(ids) and {s.shard for s in snaps} == {0, 1}

    for loc in ids:  # each location, from its part, with and without what the page shows
        snap = of[loc]
        for query, hours, obs in (("", 24, False), ("?hours=6&observations=true", 6, True)):
            want = encode(location_forecast(_old(snap), loc, hours, obs, scheme))
            got = client.get(f"/v1/forecasts/{loc}{query}")
            assert got.status_code == 200 and got.data == want, (loc, query)

    every = ForecastsResponse(
        forecasts=[
            location_forecast(_old(s), loc.location_id, 24, False, scheme)
            for s in snaps
            for loc in s.locations
            if loc.location_id in s.forecasts
        ],
        skipped={k.location_id: k.reason for s in snaps for k in s.skipped},
    )
    assert client.get("/v1/forecasts").data == encode(every)
    two = ForecastsResponse(
        forecasts=[
            location_forecast(_old(of[loc]), loc, 3, True, scheme) for loc in (ids[2], ids[0])
        ],
        skipped={},
    )
    url = f"/v1/forecasts?location={ids[2]}&location={ids[0]}&hours=3&observations=true"
    assert client.get(url).data == encode(two)

    listed = LocationsResponse(locations=[entry(loc) for s in snaps for loc in s.locations])
    assert client.get("/v1/locations").data == encode(listed)
    at = snaps[0].locations[0]
    assert at.latitude is not None and at.longitude is not None
    found = []
    for s in snaps:
        forecast = (loc for loc in s.locations if loc.location_id in s.forecasts)
        found += places.nearest(forecast, at.latitude + 0.5, at.longitude, 3)
    near = sorted(found, key=lambda pair: pair[1])[:3]
    want_near = LocationsResponse(locations=[entry(loc, d) for loc, d in near])
    got_near = client.get(f"/v1/locations?lat={at.latitude + 0.5}&lon={at.longitude}&limit=3")
    assert got_near.data == encode(want_near)

    metrics = client.get("/v1/metrics").get_json()
    shard0 = next(s for s in snaps if s.shard == 0)
    assert shard0.accuracy is not None
    assert metrics["accuracy"] == shard0.accuracy.model_dump(mode="json")
    health = client.get("/health").get_json()
    assert health["locations"] == sum(len(s.locations) for s in snaps)
    assert health["stale_locations"] == sum(len(s.stale) for s in snaps)
    assert health["issued_at"] == T.isoformat().replace("+00:00", "Z")


def _reachable(root: object) -> list[object]:
    """Every object reachable from `root` (what holding it keeps alive)."""
    seen, out, todo = {id(root)}, [root], [root]
    while todo:
        for child in gc.get_referents(todo.pop()):
            if id(child) not in seen and not isinstance(child, type):
                seen.add(id(child))
                out.append(child)
                todo.append(child)
    return out


def test_a_held_part_keeps_no_object_per_location(parts: list[bytes]):
    """What the api keeps of a part once it served every location: the part's bytes, an
    index, and the encoded answers: no pydantic model per location."""
    settings = get_services().settings
    app = create_app(settings, get_services().store)
    client = app.test_client()
    ids = location_ids()
    for loc in ids:
        assert client.get(f"/v1/forecasts/{loc}?observations=true").status_code == 200
    assert client.get("/v1/forecasts").status_code == 200
    api = app.extensions["aircast_api"]
    for k in range(SHARDS):
        serving = api.parts.part(k).get()
        held = _reachable(serving)
        models = [o for o in held if isinstance(o, BaseModel)]
        assert not [m for m in models if isinstance(m, PER_LOCATION)], k
        assert serving.part.head in models
        answers = set(map(id, serving.encoded.values())) | set(map(id, serving.by_url.values()))
        assert answers and all(isinstance(o, bytes) for o in held if id(o) in answers)
