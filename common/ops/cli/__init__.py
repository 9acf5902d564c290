"""The `aircast` command line: the same jobs the functions run, on the configured backend.

Every command reads AIRCAST_BACKEND, AIRCAST_HOME and the other settings from the
environment (see README), exactly as the deployed functions do. Commands live by concern
(data: the warehouse; jobs: ingest, backfill, train, predict; stack: serve, schedule,
replay, demo); each parses its options and calls the library. Expected failures are
`AircastError`s, turned into one line on stderr and exit code 1 in one place, `Aircast`.
"""

from __future__ import annotations

import os

import click

from common.core.errors import AircastError
from common.ops.cli import data, health, jobs, stack
from common.ops.cli.console import route_logs

__all__ = ["main"]


class Aircast(click.Group):
    """The command group; an `AircastError` from any command is a clear line, not a
    traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AircastError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=Aircast, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aircast")
@click.option("-v", "--verbose", is_flag=True, help="Show the JSON event log on stderr too.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """aircast: serverless air-quality forecasting (ingest, train, predict, serve).

    Runs on the backend chosen by AIRCAST_BACKEND (local: DuckDB + a folder under
    AIRCAST_HOME; gcp: BigQuery + Cloud Storage). The JSON event log goes to
    $AIRCAST_HOME/logs/aircast.log (`aircast demo`: logs/demo.log); -v shows it as well.
    """
    ctx.obj = {"verbose": verbose}
    if verbose:
        os.environ["AIRCAST_LOG_LEVEL"] = "INFO"
    else:  # a person at a terminal wants results; the event log is for functions
        os.environ.setdefault("AIRCAST_LOG_LEVEL", "WARNING")
    if ctx.invoked_subcommand != "demo":  # the demo keeps its own log, at INFO
        route_logs("aircast", verbose)


for _command in (*data.COMMANDS, *jobs.COMMANDS, *stack.COMMANDS, *health.COMMANDS):
    main.add_command(_command)
