"""Schemas and schedules are defined once; Terraform's copies are generated and in sync."""

from __future__ import annotations

import datetime as dt

from common.core.schema import TABLES, VARIABLES
from common.core.views import VIEWS
from common.scheduling.schedules import SCHEDULES, Schedule, validate
from tools.generate import TERRAFORM_DIR, generated_files


def test_terraform_generated_files_match_common():
    expected = generated_files()
    on_disk = {
        p.relative_to(TERRAFORM_DIR).as_posix(): p.read_text(encoding="utf-8")
        for p in [
            *(TERRAFORM_DIR / "schemas").iterdir(),
            TERRAFORM_DIR / "schedules.json",
            TERRAFORM_DIR / "tables.json",
            TERRAFORM_DIR / "functions.json",
            TERRAFORM_DIR / "thresholds.json",
        ]
    }
    assert on_disk == expected, "run `make generate` to regenerate terraform's inputs"


def test_design_tables_and_views_exist_with_their_keys():
    assert set(TABLES) == {
        "locations",
        "observations_raw",
        "weather_forecasts",
        "air_quality_forecasts",
        "air_quality_forecast_days",
        "rejected_rows",
        "forecasts",
        "interval_offsets",
        "combination_weights",
        "place_combination_weights",
        "runs",
    }
    assert set(VIEWS) == {
        "current_locations",
        "observations",
        "latest_forecasts",
        "forecast_accuracy",
        "run_status",
        "forecast_aqi",
    }
    assert TABLES["observations_raw"].partition_by == "ts"
    assert TABLES["observations_raw"].cluster_by == ("location_id",)
    assert TABLES["forecasts"].partition_by == "target_ts"
    assert {name: t.key for name, t in TABLES.items()} == {
        "locations": ("location_id",),
        "observations_raw": ("location_id", "ts"),
        "weather_forecasts": ("location_id", "issued_at", "ts"),
        "air_quality_forecasts": ("location_id", "issued_at", "ts"),
        "air_quality_forecast_days": (),
        "rejected_rows": (),
        "forecasts": ("location_id", "target", "target_ts"),
        "interval_offsets": ("target", "as_of", "horizon_h"),
        "combination_weights": ("target", "as_of", "horizon_h", "expert"),
        "place_combination_weights": ("target", "as_of", "location_id", "horizon_group"),
        "runs": (),
    }
    for t in TABLES.values():
        assert all(t.column(c).required for c in t.key), t.name
    # A view reading one keyed table keeps the newest row per that table's key.
    readers = [
        v
        for v in VIEWS.values()
        if len(v.depends_on) == 1 and v.depends_on[0] in TABLES and TABLES[v.depends_on[0]].key
    ]
    assert {v.name for v in readers} >= {"observations", "latest_forecasts"}
    for v in readers:
        key = ", ".join(TABLES[v.depends_on[0]].key)
        assert f"PARTITION BY {key} ORDER BY" in v.sql, v.name
    for name in VARIABLES:
        assert name in TABLES["observations_raw"].column_names


def test_schedules_are_valid_and_fire_on_the_hour_grid():
    validate()
    ingest = next(s for s in SCHEDULES if s.function == "ingest")
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    fires = list(ingest.fire_times(start, start + dt.timedelta(hours=3)))
    assert [f.minute for f in fires] == [5, 5, 5] and len(fires) == 3
    assert Schedule.as_of(fires[0]) == start
