"""What every command shares at the terminal: the time option, printing runs and tables,
turning options into a job request, and waiting for Ctrl-C."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import pandas as pd
from pydantic import BaseModel

from common.core.timeutil import parse_time
from common.runtime.handler import parse

M = TypeVar("M", bound=BaseModel)


class TimeParam(click.ParamType):
    """An ISO-8601 time on the command line (naive means UTC)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.datetime):
            return value
        try:
            return parse_time(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TIME = TimeParam()


def parse_request(model: type[M], **fields: Any) -> M:
    """A job request from CLI options, with the HTTP path's validation messages (unset
    options are left to the request's defaults)."""
    return parse(model, {k: v for k, v in fields.items() if v is not None})


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def print_run(result: dict[str, Any]) -> None:
    """A run's answer: a one-line summary on stderr, the JSON on stdout."""
    counts = " ".join(f"{k}={v}" for k, v in result.get("counts", {}).items())
    click.echo(f"{result['function']} {result['status']} ({result['run_id']}) {counts}", err=True)
    for failure in result.get("failed_locations", []):
        click.echo(f"  failed {failure['location_id']}: {failure['error']}", err=True)
    print_json(result)


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


class HomeLog:
    """A log file under the home, opened (and its folder made) at the first line, so a
    command that logs nothing leaves nothing behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def write(self, text: str) -> int:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        return self._file.write(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()


def route_logs(name: str, verbose: bool, level: str | None = None) -> Path | None:
    """Send the JSON event log to $AIRCAST_HOME/logs/<name>.log, and to stderr as well with
    -v: a person at a terminal reads the commands' own lines, the events stay on file."""
    from common.core.config import ConfigError, load_settings
    from common.core.logs import configure_logging

    try:
        settings = load_settings()
    except (ConfigError, ValueError):  # the command reports a bad setting itself
        return None
    path = settings.home / "logs" / f"{name}.log"
    more = [sys.stderr] if verbose else []
    configure_logging(level or settings.log_level, HomeLog(path), *more)
    return path


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def wait_for_interrupt(served: Callable[[], bool] = lambda: True) -> None:
    """Block until Ctrl-C or SIGTERM (so `kill` also stops the served children), or until
    `served()` says a child process has died."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while served():
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)
