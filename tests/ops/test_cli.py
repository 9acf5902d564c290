"""The aircast CLI skeleton: init, sql, help; every command honours AIRCAST_HOME; every
expected error is an AircastError with an HTTP status, and the CLI turns one into a line on
stderr and a non-zero exit."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import common
from common.core.errors import AircastError, Contention, RunFailed
from common.core.schema import TABLES
from common.core.views import VIEWS
from common.ops.cli import main
from common.runtime.statuses import http_status
from tests.conftest import use_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRCAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    return tmp_path / "home"


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_init_twice_leaves_the_same_schema(home: Path):
    from common.runtime.services import get_services, reset

    out = run("init")
    assert all(name in out for name in (*TABLES, *VIEWS))
    first = get_services().warehouse.relations()
    reset()
    run("init")
    assert get_services().warehouse.relations() == first
    assert (home / "warehouse.duckdb").exists()


def test_sql_on_a_fresh_home_prints_the_empty_tables(home: Path):
    out = run("sql")
    for name in (*TABLES, *VIEWS):
        assert name in out
    assert "observations_raw table     0" in out
    out = run("sql", "SELECT location_id, ts FROM observations")
    assert "location_id" in out and "(0 rows)" in out


def test_sql_json_prints_an_array_of_objects(home: Path):
    rows = json.loads(run("sql", "--json", "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'"))
    assert rows == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert json.loads(run("sql", "--json", "SELECT * FROM run_status")) == []
    rows = json.loads(run("sql", "--json", "-p", "n=3", "SELECT @n * 2 AS doubled"))
    assert rows == [{"doubled": 6}]


def test_sql_errors_are_one_clear_line(home: Path):
    result = CliRunner().invoke(main, ["sql", "SELEC nonsense"])
    assert result.exit_code != 0 and "Error:" in result.output
    assert "Traceback" not in result.output


def test_bad_configuration_fails_naming_the_variable(home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRCAST_BACKEND", "nope")
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code != 0 and "AIRCAST_BACKEND" in result.output


def test_help_lists_every_command_with_a_one_line_description():
    out = run("--help")
    commands = out.split("Commands:")[1].strip().splitlines()
    assert {line.split()[0] for line in commands} == set(main.commands)
    for line in commands:
        assert len(line.split(None, 1)) == 2 and not line.rstrip().endswith("..."), line


def test_console_script_runs_on_the_configured_home(tmp_path: Path):
    exe = Path(sys.executable).parent / "aircast"
    env = {"AIRCAST_HOME": str(tmp_path / "h2"), "PATH": str(exe.parent)}
    out = subprocess.run(
        [str(exe), "sql", "--json", "SELECT COUNT(*) AS n FROM locations"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == [{"n": 0}]
    assert (tmp_path / "h2" / "warehouse.duckdb").exists()


@pytest.mark.emulator
def test_init_and_sql_on_the_gcp_backend(gcp_settings, monkeypatch: pytest.MonkeyPatch):
    use_settings(monkeypatch, gcp_settings)
    out = run("init")
    assert f"{gcp_settings.project}.{gcp_settings.dataset}" in out
    run("init")
    assert json.loads(run("sql", "--json", "SELECT COUNT(*) AS n FROM observations")) == [{"n": 0}]


# -- errors --------------------------------------------------------------------------------
def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of `common`, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(common.__path__, "common."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # runs the CLI when imported
            continue
        module = importlib.import_module(info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def test_every_exception_in_common_is_an_aircast_error_without_an_http_status():
    """What an error means is its class; the status it answers is the edges' call
    (common.runtime.statuses), so nothing below them names one."""
    classes = exception_classes()
    assert "common.storage.base.StoreError" in classes  # the walk reached the adapters
    assert "common.runtime.locations.LocationsError" in classes
    for name, cls in classes.items():
        assert issubclass(cls, AircastError), f"{name} is not an AircastError"
        assert not hasattr(cls, "status"), name


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("common.core.errors.BadRequest", 400),
        ("common.runtime.handler.AircastBadBody", 400),
        ("common.core.errors.NotFound", 404),
        ("common.core.errors.Conflict", 409),
        ("common.core.errors.PayloadTooLarge", 413),
        ("common.core.errors.RunFailed", 500),
        ("common.core.config.ConfigError", 500),
        ("common.runtime.locations.LocationsError", 500),
        ("common.warehouse.base.WarehouseError", 500),
        ("common.warehouse.sql.SQLError", 500),
        ("common.storage.base.StoreError", 500),
        ("common.storage.base.ObjectMissing", 500),
        ("common.storage.base.GenerationMismatch", 500),
        ("common.scheduling.stack.StackError", 500),
        ("common.sources.http.SourceError", 502),
        ("common.scheduling.local.ReplayError", 502),
        ("common.core.errors.Unavailable", 503),
        ("common.core.errors.Contention", 503),
    ],
)
def test_each_error_answers_the_status_it_means(name: str, status: int):
    module, _, attr = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attr)
    exc = cls({"error": "x"}) if cls is RunFailed else cls("x")
    assert http_status(exc) == status


def test_a_failed_run_answers_503_when_its_cause_is_retryable():
    retryable = RunFailed({"error": "lost the race"})
    retryable.__cause__ = Contention("serving/latest.json kept changing; retry")
    assert http_status(retryable) == 503


def test_the_stores_words_are_its_own_and_not_the_callers():
    from common import storage
    from common.core import errors
    from common.serving import api

    assert not issubclass(storage.ObjectMissing, errors.CallerError)
    assert not issubclass(storage.GenerationMismatch, errors.CallerError)
    assert issubclass(storage.ObjectMissing, storage.StoreError)
    assert api.Unavailable is errors.Unavailable


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sql", "SELEC nonsense"], 'syntax error at or near "SELEC"'),  # WarehouseError
        (["predict", "--as-of", "2024-01-01T00:00Z"], "no model in production"),  # Conflict
        (["ingest", "--source", "csv", "--path", "{empty}"], "no .csv files in"),  # BadRequest
    ],
)
def test_an_aircast_error_is_one_line_on_stderr_and_a_non_zero_exit(
    home: Path, tmp_path: Path, args: list[str], message: str
):
    (tmp_path / "empty").mkdir()
    run("init")
    args = [a.format(empty=tmp_path / "empty") for a in args]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 1
    assert "Error: " in result.stderr and message in result.stderr
    assert message not in result.stdout and "Traceback" not in result.output


def test_replay_reads_the_csv_folder_it_is_given(
    home: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
):
    """`aircast replay --path` makes the named folder the csv source's root in-process, as
    `aircast ingest --path` does (it failed asking for AIRCAST_CSV_PATH)."""
    monkeypatch.delenv("AIRCAST_CSV_PATH", raising=False)
    folder = str(shared_data / "beijing-multisite")
    # Two hours with no warm-up: two hourly ingests and predicts (no model yet), no train.
    out = run("replay", "--start", "2016-03-01T00:00Z", "--end", "2016-03-01T01:59Z",
              "--source", "csv", "--path", folder, "--warmup-days", "0")  # fmt: skip
    assert "ingest   runs     2  ok     2" in out, out
    assert "AIRCAST_CSV_PATH" not in out
    sql = "SELECT COUNT(DISTINCT location_id) AS n FROM observations"
    assert json.loads(run("sql", "--json", sql)) == [{"n": 8}]


def test_an_impossible_date_is_named_not_called_malformed(home: Path):
    result = CliRunner().invoke(main, ["ingest", "--as-of", "2024-02-30"])
    assert result.exit_code == 2, result.output
    assert "'2024-02-30' is not a valid date or time: day is out of range" in result.output
    result = CliRunner().invoke(main, ["predict", "--as-of", "yesterday"])
    assert "not an ISO-8601 time: 'yesterday'" in result.output


def test_train_refuses_an_unknown_target_before_it_starts(home: Path):
    result = CliRunner().invoke(main, ["train", "--target", "pm25"])
    assert result.exit_code == 2, result.output
    assert (
        "Invalid value for --target: 'pm25' is not forecast here; choose from pm2_5"
        in result.output
    )
    assert "training" not in result.output


def test_replay_offers_the_same_sources_as_ingest_and_backfill(home: Path):
    from common.sources import SOURCE_NAMES

    for command in ("ingest", "backfill", "replay"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert "--source [" + "|".join(SOURCE_NAMES) + "]" in result.output, (
            command,
            result.output,
        )
    result = CliRunner().invoke(
        main, ["replay", "--start", "2024-01-01", "--end", "2024-01-02", "--source", "nope"]
    )
    assert result.exit_code == 2 and "'nope' is not one of" in result.output
