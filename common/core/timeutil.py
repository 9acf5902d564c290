"""Time handling: everything is UTC, hourly, and `as_of` bounds what a run may see."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BeforeValidator

UTC = dt.UTC


def parse_time(value: str | dt.datetime) -> dt.datetime:
    """ISO-8601 (or datetime) to an aware UTC datetime; naive input is taken as UTC."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO-8601 time: {value!r}") from None
    if not isinstance(value, dt.datetime):
        raise ValueError(f"not a time: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def floor_hour(value: dt.datetime) -> dt.datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def now_hour() -> dt.datetime:
    """The default as_of: now, floored to the hour."""
    return floor_hour(dt.datetime.now(UTC))


def resolve_as_of(value: str | dt.datetime | None) -> dt.datetime:
    """`as_of` as given (floored to the hour), or now."""
    return now_hour() if value is None else floor_hour(parse_time(value))


def iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# A pydantic field type for request bodies: ISO-8601 string -> aware UTC datetime.
UTCDateTime = Annotated[dt.datetime, BeforeValidator(parse_time)]
