"""Commands over the warehouse itself: create the schema, run SQL."""

from __future__ import annotations

import sys
from typing import Any

import click
import pandas as pd

from common.core.schema import TABLES
from common.core.views import VIEWS
from common.ops.cli.console import frame_to_json, frame_to_text
from common.runtime.services import get_services
from common.warehouse import Warehouse


@click.command()
def init() -> None:
    """Create the dataset, tables and views (idempotent)."""
    svc = get_services()
    svc.warehouse.ensure_schema()
    settings = svc.settings
    where = (
        f"{settings.warehouse_path}"
        if settings.backend == "local"
        else f"{settings.project}.{settings.dataset}"
    )
    click.echo(f"schema ready in {where} ({settings.backend} backend)")
    for name in (*TABLES, *VIEWS):
        click.echo(f"  {_kind(name):<5} {settings.dataset}.{name}")


@click.command()
@click.argument("query", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print rows as a JSON array of objects.")
@click.option("--param", "-p", multiple=True, metavar="NAME=VALUE", help="Query parameter @NAME.")
@click.option("--max-rows", default=200, show_default=True, help="Rows shown in table output.")
def sql(query: str | None, as_json: bool, param: tuple[str, ...], max_rows: int) -> None:
    """Run SQL over the warehouse; no QUERY lists the tables.

    SQL is BigQuery's dialect (translated for DuckDB locally). Tables are named without
    dataset (`SELECT * FROM latest_forecasts`). QUERY `-` reads the SQL from stdin.
    """
    warehouse = get_services().warehouse
    if query is None:
        frame = table_summary(warehouse)
    else:
        frame = warehouse.query(sys.stdin.read() if query == "-" else query, parse_params(param))
    click.echo(frame_to_json(frame) if as_json else frame_to_text(frame, max_rows))


COMMANDS = (init, sql)


def _kind(name: str) -> str:
    return "table" if name in TABLES else "view"


def table_summary(warehouse: Warehouse) -> pd.DataFrame:
    """Every table and view with its row count."""
    rows = []
    for name in (*TABLES, *VIEWS):
        count = warehouse.query(f"SELECT COUNT(*) AS n FROM {name}")["n"].iloc[0]
        rows.append({"name": name, "kind": _kind(name), "rows": int(count)})
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
