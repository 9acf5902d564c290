"""Places come into being with data: an ingest that reaches nothing registers nothing, and
`aircast locations` lists, deactivates, activates and removes places (DuckDB and the
BigQuery emulator alike)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from common.core.config import Settings, get_settings
from common.core.errors import NotFound, RunFailed
from common.ingest.job import IngestRequest, run_ingest
from common.ops.cli import main
from common.runtime import locations as locations_mod
from common.runtime import services
from common.runtime.services import Services, get_services
from common.sources.base import Location
from common.storage import open_store
from common.warehouse import open_warehouse

AS_OF = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)


def _places(tmp_path: Path, source: str, n: int) -> Path:
    path = tmp_path / "locations.toml"
    path.write_text(
        "".join(
            f'[[location]]\nid = "{source}-{i}"\nname = "P{i}"\nlatitude = {10 + i}.5\n'
            f'longitude = 103.8\nsource = "{source}"\n'
            for i in range(n)
        )
    )
    return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    monkeypatch.setenv("AIRCAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRCAST_HTTP_RETRIES", "0")
    monkeypatch.setenv("AIRCAST_OPEN_METEO_URL", "http://127.0.0.1:9/v1/forecast")
    monkeypatch.setenv("AIRCAST_OPEN_METEO_ARCHIVE_URL", "http://127.0.0.1:9/v1/archive")
    monkeypatch.setenv("AIRCAST_OPEN_METEO_AIR_URL", "http://127.0.0.1:9/v1/air-quality")
    get_settings.cache_clear()
    services.reset()
    return tmp_path


def test_an_unreachable_source_registers_no_place(env: Path, monkeypatch):
    monkeypatch.setenv("AIRCAST_LOCATIONS_FILE", str(_places(env, "open-meteo", 6)))
    get_settings.cache_clear()
    services.reset()
    with pytest.raises(RunFailed):
        run_ingest(IngestRequest(as_of=AS_OF, source="open-meteo"), get_services())
    assert locations_mod.current(get_services().warehouse).empty


def test_a_place_is_registered_with_its_first_row(env: Path, monkeypatch):
    monkeypatch.setenv("AIRCAST_LOCATIONS_FILE", str(_places(env, "synthetic", 2)))
    get_settings.cache_clear()
    services.reset()
    run_ingest(IngestRequest(as_of=AS_OF, source="synthetic"), get_services())
    current = locations_mod.current(get_services().warehouse)
    assert sorted(current["location_id"]) == ["synthetic-0", "synthetic-1"]
    assert current["active"].all()


def test_the_locations_command_lists_deactivates_activates_and_removes(env: Path, monkeypatch):
    monkeypatch.setenv("AIRCAST_LOCATIONS_FILE", str(_places(env, "synthetic", 2)))
    get_settings.cache_clear()
    services.reset()
    run_ingest(IngestRequest(as_of=AS_OF, source="synthetic"), get_services())

    def cli(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(main, ["locations", *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    listed = cli("list")
    assert "synthetic-0" in listed and "synthetic-1" in listed
    assert "deactivated 1 of 1" in cli("deactivate", "synthetic-0")
    current = locations_mod.current(get_services().warehouse).set_index("location_id")
    assert not current.loc["synthetic-0", "active"] and current.loc["synthetic-1", "active"]
    assert "activated 1 of 1" in cli("activate", "synthetic-0")
    assert "removed 1 of 1" in cli("remove", "synthetic-1")
    assert list(locations_mod.current(get_services().warehouse)["location_id"]) == ["synthetic-0"]
    assert "unknown locations: nowhere" in cli("remove", "nowhere", code=1)


def test_set_active_and_remove_on_each_backend(settings: Settings):
    svc = Services(settings, open_warehouse(settings), open_store(settings))
    svc.warehouse.ensure_schema()
    wh = svc.warehouse
    places = [Location(f"p-{i}", f"P{i}", 1.0, 2.0, "synthetic") for i in range(3)]
    assert locations_mod.register(wh, places) == 3
    assert locations_mod.set_active(wh, ["p-0"], False) == 1
    assert locations_mod.set_active(wh, ["p-0"], False) == 0  # already inactive: no row
    assert locations_mod.remove(wh, ["p-1"]) == 1
    current = locations_mod.current(wh).set_index("location_id")
    assert sorted(current.index) == ["p-0", "p-2"]
    assert not current.loc["p-0", "active"]
    with pytest.raises(NotFound):
        locations_mod.remove(wh, ["p-9"])
