from __future__ import annotations

import typing
from pathlib import Path

import click
import pytest
from pydantic import SecretStr, ValidationError

from common.core.catalog import CLOUD_SOURCES, DEFAULT_SOURCE, SOURCE_NAMES, SOURCES
from common.core.config import ConfigError, Settings, load_settings
from common.core.errors import BadRequest
from common.ingest.job import IngestRequest
from common.ops.cli import main
from common.runtime import locations
from common.sources import default_source


def test_defaults(monkeypatch: pytest.MonkeyPatch):
    for var in ("AIRCAST_BACKEND", "AIRCAST_HOME", "AIRCAST_DATASET", "AIRCAST_TARGET"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert (s.backend, s.home, s.dataset, s.target, s.horizon) == (
        "local",
        Path(".aircast"),
        "aircast",
        "pm2_5",
        24,
    )


def test_targets_come_from_one_list_with_target_as_the_fallback(monkeypatch: pytest.MonkeyPatch):

    for var in ("AIRCAST_TARGET", "AIRCAST_TARGETS"):
        monkeypatch.delenv(var, raising=False)
    assert load_settings().forecast_targets == ("pm2_5",)
    monkeypatch.setenv("AIRCAST_TARGET", "pm10")  # the single-target setting keeps working
    assert load_settings().forecast_targets == ("pm10",)
    monkeypatch.setenv("AIRCAST_TARGETS", " ozone, pm2_5 ,nitrogen_dioxide")
    s = load_settings()
    assert s.forecast_targets == ("ozone", "pm2_5", "nitrogen_dioxide")
    assert s.default_target == "ozone" and s.target_of(None) == "ozone"
    assert s.target_of("pm2_5") == "pm2_5"
    with pytest.raises(BadRequest, match="pm10") as bad:
        s.target_of("pm10")  # a pollutant, but not forecast here
    assert bad.value.field == "target" and isinstance(bad.value, BadRequest)


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("AIRCAST_HOME", str(tmp_path))
    monkeypatch.setenv("AIRCAST_BACKEND", "gcp")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project-1")
    monkeypatch.setenv("AIRCAST_BUCKET", "my-bucket")
    monkeypatch.setenv("AIRCAST_HORIZON", "12")
    s = load_settings()
    assert (s.home, s.backend, s.project, s.bucket, s.horizon) == (
        tmp_path,
        "gcp",
        "my-project-1",
        "my-bucket",
        12,
    )


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("AIRCAST_BACKEND", "azure", "AIRCAST_BACKEND"),
        ("AIRCAST_HORIZON", "zero", "AIRCAST_HORIZON"),
        ("AIRCAST_HORIZON", "0", "AIRCAST_HORIZON"),
        ("AIRCAST_DATASET", "air-cast; drop", "AIRCAST_DATASET"),
        ("AIRCAST_TARGET", "pm25", "AIRCAST_TARGET"),
        ("AIRCAST_TARGETS", "pm2_5,pm25", "AIRCAST_TARGETS"),
        ("AIRCAST_TARGETS", "pm2_5,temperature_2m", "AIRCAST_TARGETS"),  # not a pollutant
        ("AIRCAST_TARGETS", "pm10,pm10", "AIRCAST_TARGETS"),
        ("AIRCAST_TARGETS", " , ", "AIRCAST_TARGETS"),
        ("GOOGLE_CLOUD_PROJECT", "Not A Project", "GOOGLE_CLOUD_PROJECT"),
        ("AIRCAST_BUCKET", "UPPER", "AIRCAST_BUCKET"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, var, value, named):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_gcp_backend_needs_project_and_bucket(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("AIRCAST_BUCKET", raising=False)
    monkeypatch.setenv("AIRCAST_BACKEND", "gcp")
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT and AIRCAST_BUCKET"):
        load_settings()


# -- sources: one catalog feeds every place that takes a source name ------------------------
def _cli_source_choices(group: click.Group) -> list[tuple[str, ...]]:
    found = []
    for command in group.commands.values():
        if isinstance(command, click.Group):
            found += _cli_source_choices(command)
        for param in command.params:
            if param.name == "source" and isinstance(param.type, click.Choice):
                found.append(tuple(param.type.choices))
    return found


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_every_catalogued_source_is_accepted_wherever_a_source_is_named(name, tmp_path: Path):
    assert load_settings(source=name).source == name
    assert IngestRequest(source=name).source == name
    entry = f'[[location]]\nid = "x"\nname = "x"\nlatitude = 1\nlongitude = 2\nsource = "{name}"\n'
    (tmp_path / "l.toml").write_text(entry)
    assert [loc.source for loc in locations.load_file(tmp_path / "l.toml")] == [name]


def test_a_source_outside_the_catalog_is_refused_everywhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("AIRCAST_SOURCE", "open_meteo")
    with pytest.raises(ConfigError, match="AIRCAST_SOURCE"):
        load_settings()
    with pytest.raises(ValidationError, match="unknown source 'open_meteo'"):
        IngestRequest(source="open_meteo")
    entry = '[[location]]\nid = "x"\nname = "x"\nlatitude = 1\nlongitude = 2\nsource = "nope"\n'
    (tmp_path / "l.toml").write_text(entry)
    with pytest.raises(locations.LocationsError, match=r"source: .*unknown source 'nope'"):
        locations.load_file(tmp_path / "l.toml")
    choices = _cli_source_choices(main)
    assert choices and all(c == SOURCE_NAMES for c in choices)


def test_each_backend_defaults_to_a_source_it_can_run():
    backends = typing.get_args(Settings.model_fields["backend"].annotation)
    assert set(DEFAULT_SOURCE) == set(backends)
    assert DEFAULT_SOURCE["gcp"] in CLOUD_SOURCES
    gcp = load_settings(backend="gcp", project="my-project-1", bucket="my-bucket")
    assert default_source(gcp) == DEFAULT_SOURCE["gcp"]
    assert default_source(load_settings(backend="local", source="csv")) == "csv"


def test_a_source_token_is_a_secret_setting():
    for info in SOURCES.values():
        if info.token_setting is not None:
            assert Settings.model_fields[info.token_setting].annotation == SecretStr | None
    assert [n for n, s in SOURCES.items() if s.token_setting] == ["aqicn", "openaq"]
