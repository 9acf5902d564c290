"""A deployed user brings their own places without rebuilding the function zips: a TOML
file at `imports/locations.toml` in the artifact store replaces the packaged
common/runtime/locations.toml for the next ingest (an explicit AIRCAST_LOCATIONS_FILE still
wins). Tested on the local store and on the GCS emulator, as Terraform's `locations_toml`
writes it."""

from __future__ import annotations

import datetime as dt

import pytest

from common.core.config import Settings
from common.core.errors import BadRequest
from common.ingest.job import IngestRequest, run_ingest
from common.runtime.locations import STORE_KEY, for_source
from common.runtime.services import Services
from common.storage import open_store
from common.warehouse import open_warehouse

AS_OF = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
OWN = """
[[location]]
id = "my-rooftop"
name = "My rooftop (synthetic)"
latitude = 48.1372
longitude = 11.5755
source = "synthetic"
timezone = "Europe/Berlin"
"""


def _services(settings: Settings) -> Services:
    warehouse = open_warehouse(settings)
    warehouse.ensure_schema()
    return Services(settings, warehouse, open_store(settings))


def _active(svc: Services) -> set[str]:
    rows = svc.warehouse.query("SELECT location_id, active FROM current_locations")
    return set(rows.loc[rows["active"].astype(bool), "location_id"])


def test_places_in_the_store_replace_the_packaged_ones_at_the_next_ingest(settings: Settings):
    svc = _services(settings)
    request = IngestRequest(as_of=AS_OF, source="synthetic")
    run_ingest(request, svc)
    packaged = {loc.location_id for loc in for_source("synthetic")}
    assert _active(svc) == packaged  # no object: the packaged file

    svc.store.put(STORE_KEY, OWN.encode())
    answer = run_ingest(request.model_copy(update={"as_of": AS_OF + dt.timedelta(hours=1)}), svc)
    assert answer["status"] == "success"
    assert _active(svc) == {"my-rooftop"}  # the packaged places retired, history kept
    got = svc.warehouse.query(
        "SELECT DISTINCT location_id FROM observations WHERE ts > @t", {"t": AS_OF}
    )
    assert set(got["location_id"]) == {"my-rooftop"}


def test_a_bad_locations_object_is_a_400_naming_it(settings: Settings):
    svc = _services(settings)
    svc.store.put(STORE_KEY, OWN.replace("48.1372", "148.1").encode())
    with pytest.raises(BadRequest) as info:
        run_ingest(IngestRequest(as_of=AS_OF, source="synthetic"), svc)
    assert STORE_KEY in info.value.message and "latitude" in info.value.message
    assert info.value.field == "locations"


def test_an_explicit_locations_file_wins_over_the_store(local_settings: Settings, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(OWN.replace("my-rooftop", "my-balcony"), encoding="utf-8")
    svc = _services(local_settings.model_copy(update={"locations_file": path}))
    svc.store.put(STORE_KEY, OWN.encode())
    run_ingest(IngestRequest(as_of=AS_OF, source="synthetic"), svc)
    assert _active(svc) == {"my-balcony"}
