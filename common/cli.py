"""The `aircast` command line: the same jobs the functions run, on the configured backend.

Every command reads AIRCAST_BACKEND, AIRCAST_HOME and the other settings from the
environment (see README), exactly as the deployed functions do.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click
import pandas as pd

from common.config import ConfigError
from common.errors import AircastError, RunFailed
from common.schema import TABLES, VIEWS
from common.services import Services, get_services
from common.sql import SQLError
from common.storage import StoreError
from common.warehouse import WarehouseError

EXPECTED_ERRORS = (ConfigError, WarehouseError, StoreError, SQLError, AircastError, RunFailed)


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one clear line and a non-zero exit, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EXPECTED_ERRORS as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def services() -> Services:
    return get_services()


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aircast")
def main() -> None:
    """aircast: serverless air-quality forecasting (ingest, train, predict, serve).

    Runs on the backend chosen by AIRCAST_BACKEND (local: DuckDB + a folder under
    AIRCAST_HOME; gcp: BigQuery + Cloud Storage).
    """


@main.command()
@friendly_errors
def init() -> None:
    """Create the dataset, tables and views (idempotent)."""
    svc = services()
    svc.warehouse.ensure_schema()
    where = (
        f"{svc.settings.warehouse_path}"
        if svc.settings.backend == "local"
        else f"{svc.settings.project}.{svc.settings.dataset}"
    )
    click.echo(f"schema ready in {where} ({svc.settings.backend} backend)")
    for name in (*TABLES, *VIEWS):
        kind = "table" if name in TABLES else "view"
        click.echo(f"  {kind:<5} {svc.settings.dataset}.{name}")


@main.command()
@click.argument("query", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print rows as a JSON array of objects.")
@click.option("--param", "-p", multiple=True, metavar="NAME=VALUE", help="Query parameter @NAME.")
@click.option("--max-rows", default=200, show_default=True, help="Rows shown in table output.")
@friendly_errors
def sql(query: str | None, as_json: bool, param: tuple[str, ...], max_rows: int) -> None:
    """Run SQL over the warehouse; no QUERY lists the tables.

    SQL is BigQuery's dialect (translated for DuckDB locally). Tables are named without
    dataset (`SELECT * FROM latest_forecasts`). QUERY `-` reads the SQL from stdin.
    """
    warehouse = services().warehouse
    if query is None:
        frame = table_summary()
    else:
        if query == "-":
            query = sys.stdin.read()
        frame = warehouse.query(query, parse_params(param))
    if as_json:
        click.echo(frame_to_json(frame))
        return
    click.echo(frame_to_text(frame, max_rows))


def table_summary() -> pd.DataFrame:
    """Every table and view with its row count."""
    warehouse = services().warehouse
    rows = []
    for name in (*TABLES, *VIEWS):
        count = warehouse.query(f"SELECT COUNT(*) AS n FROM {name}")["n"].iloc[0]
        rows.append(
            {"name": name, "kind": "table" if name in TABLES else "view", "rows": int(count)}
        )
    return pd.DataFrame(rows)


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """NAME=VALUE pairs; values that look like numbers become numbers."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--param")
        try:
            out[name] = int(value)
        except ValueError:
            try:
                out[name] = float(value)
            except ValueError:
                out[name] = value
    return out


def frame_to_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", date_format="iso", date_unit="s", force_ascii=False)


def frame_to_text(frame: pd.DataFrame, max_rows: int) -> str:
    if frame.columns.empty:
        return "(no result)"
    if frame.empty:
        return "  ".join(frame.columns) + "\n(0 rows)"
    shown = frame.head(max_rows).to_string(index=False)
    more = len(frame) - max_rows
    return (
        shown
        + (f"\n... {more} more rows (use --max-rows or --json)" if more > 0 else "")
        + (f"\n({len(frame)} rows)")
    )


if __name__ == "__main__":
    main()
