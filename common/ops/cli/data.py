"""Commands over the warehouse itself: create the schema, run SQL."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
import pandas as pd

from common.core.schema import TABLES
from common.core.views import VIEWS
from common.ops.cli.console import frame_to_json, frame_to_text
from common.runtime import locations as locations_mod
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


@click.group()
def locations() -> None:
    """List, deactivate, activate or remove places.

    A place is registered by ingest when its first row lands. Deactivating stops predict
    forecasting it and freshness watching it (its history stays); removing deletes its
    rows from `locations` (for a place registered by mistake; observations stay).
    """


@locations.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print rows as a JSON array of objects.")
def locations_list(as_json: bool) -> None:
    """Every registered place, its state and its newest observation."""
    frame = get_services().warehouse.query(
        "SELECT l.location_id, l.name, l.source, l.active, l.updated_at, o.newest, o.rows "
        "FROM current_locations AS l LEFT JOIN (SELECT location_id, MAX(ts) AS newest, "
        "COUNT(*) AS rows FROM observations GROUP BY location_id) AS o "
        "ON o.location_id = l.location_id ORDER BY l.location_id"
    )
    click.echo(frame_to_json(frame) if as_json else frame_to_text(frame, 10_000))


def _change(ids: tuple[str, ...], verb: str, apply: Callable[[Warehouse, list[str]], int]) -> None:
    n = apply(get_services().warehouse, list(ids))
    click.echo(f"{verb} {n} of {len(ids)} location(s)")


@locations.command("deactivate")
@click.argument("ids", nargs=-1, required=True)
def locations_deactivate(ids: tuple[str, ...]) -> None:
    """Stop forecasting and watching these places (their history stays)."""
    _change(ids, "deactivated", lambda w, i: locations_mod.set_active(w, i, False))


@locations.command("activate")
@click.argument("ids", nargs=-1, required=True)
def locations_activate(ids: tuple[str, ...]) -> None:
    """Forecast and watch these places again."""
    _change(ids, "activated", lambda w, i: locations_mod.set_active(w, i, True))


@locations.command("remove")
@click.argument("ids", nargs=-1, required=True)
def locations_remove(ids: tuple[str, ...]) -> None:
    """Delete these places from `locations` (their observations and forecasts stay)."""
    _change(ids, "removed", locations_mod.remove)


COMMANDS = (init, sql, locations)


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
