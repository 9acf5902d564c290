"""The schema is defined once; Terraform's copies are generated from it and kept in sync."""

from __future__ import annotations

from common.schema import TABLES, TERRAFORM_SCHEMA_DIR, VARIABLES, VIEWS, terraform_files


def test_terraform_schema_files_match_common():
    expected = terraform_files()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in TERRAFORM_SCHEMA_DIR.iterdir()}
    assert on_disk == expected, "run `python -m common.schema` to regenerate terraform/schemas"


def test_design_tables_and_views_exist_with_their_keys():
    assert set(TABLES) == {"locations", "observations_raw", "rejected_rows", "forecasts", "runs"}
    assert set(VIEWS) == {"observations", "latest_forecasts", "forecast_accuracy"}
    assert TABLES["observations_raw"].partition_by == "ts"
    assert TABLES["observations_raw"].cluster_by == ("location_id",)
    assert TABLES["forecasts"].partition_by == "target_ts"
    for name in VARIABLES:
        assert name in TABLES["observations_raw"].column_names
