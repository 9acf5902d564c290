"""`aircast status`: the pipeline's health now (or at --as-of), for a person or for cron.

Exit code 0 unless a condition is `alert` (then 2), so a cron job or a CI step can act on
it; --json prints what the api's /health carries.
"""

from __future__ import annotations

import datetime as dt
import sys

import click

from common.core.timeutil import iso, resolve_as_of
from common.ops.cli.console import TIME, print_json
from common.runtime.services import get_services

ALERT_EXIT = 2
MARKS = {"ok": "ok   ", "warn": "WARN ", "alert": "ALERT"}


@click.command()
@click.option("--as-of", "as_of", type=TIME, help="Evaluate at this time (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_of: dt.datetime | None, as_json: bool) -> None:
    """Health of the pipeline: every condition, ok | warn | alert."""
    from common.monitoring.status import evaluate

    result = evaluate(get_services(), resolve_as_of(as_of))
    if as_json:
        print_json(result.to_json())
    else:
        click.echo(f"status {result.status} at {iso(result.as_of)}")
        width = max(len(c.name) for c in result.conditions)
        for c in result.conditions:
            click.echo(f"  {MARKS[c.state]} {c.name:<{width}}  {c.detail}")
    if result.status == "alert":
        sys.exit(ALERT_EXIT)


COMMANDS = (status,)
