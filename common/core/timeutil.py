"""Time handling: everything is UTC, hourly, and `as_of` bounds what a run may see."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ValidationInfo

UTC = dt.UTC


def parse_time(value: str | dt.datetime) -> dt.datetime:
    """ISO-8601 (or datetime) to an aware UTC datetime; naive input is taken as UTC."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            if str(exc).startswith("Invalid isoformat"):  # not shaped like a time at all
                raise ValueError(f"not an ISO-8601 time: {value!r}") from None
            # Shaped right, but no such date or time (2024-02-30, hour 25): say which.
            raise ValueError(f"{value!r} is not a valid date or time: {exc}") from None
    if not isinstance(value, dt.datetime):
        raise ValueError(f"not a time: {value!r}")
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00 has no UTC year
        raise ValueError(f"{value.isoformat()} {OUT_OF_RANGE}") from None


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


# The times a request may name (as_of, start, end, an observation's ts), in one place: from
# the Unix epoch (no source has older data; pandas and warehouses handle it) to a week
# ahead of now (forecast hours; a clock a little fast). Outside them a request is a 400
# naming the field, never a date overflow in the job (0001-01-01 minus a lookback).
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=UTC)
LATEST_AHEAD = dt.timedelta(days=7)
OUT_OF_RANGE = (
    f"is outside the accepted times: from {iso(EARLIEST)} to {LATEST_AHEAD.days} days after now"
)


def check_range(value: dt.datetime) -> dt.datetime:
    """`value` if within [EARLIEST, now + LATEST_AHEAD], else a ValueError saying the bounds."""
    latest = dt.datetime.now(UTC) + LATEST_AHEAD
    if not EARLIEST <= value <= latest:
        raise ValueError(f"{iso(value)} {OUT_OF_RANGE}")
    return value


# A run's `as_of` is its clock: a run about a later hour would publish forecasts, a status
# or a model dated in the future, which every later run then defers to. So `as_of` may lie
# at most AIRCAST_MAX_CLOCK_SKEW_SECONDS after the real clock (a scheduler a little fast).
# A replay is not an exception: it simulates past hours and passes each as_of explicitly.
DEFAULT_CLOCK_SKEW = dt.timedelta(minutes=5)


def clock_skew() -> dt.timedelta:
    """AIRCAST_MAX_CLOCK_SKEW_SECONDS when the settings load, else its default."""
    from common.core.config import ConfigError, get_settings  # config sits beside timeutil

    try:
        return dt.timedelta(seconds=get_settings().max_clock_skew_seconds)
    except ConfigError:
        return DEFAULT_CLOCK_SKEW


def check_not_future(value: dt.datetime, now: dt.datetime | None = None) -> dt.datetime:
    """`value` if not after now + the clock skew, else a ValueError saying the bound."""
    now = now or dt.datetime.now(UTC)
    skew = clock_skew()
    if value > now + skew:
        raise ValueError(
            f"{iso(value)} is after now ({iso(now.replace(microsecond=0))}) plus the "
            f"allowed clock skew of {skew.total_seconds():g}s (AIRCAST_MAX_CLOCK_SKEW_SECONDS):"
            " a run cannot be about a future hour"
        )
    return value


def in_future(value: dt.datetime, now: dt.datetime | None = None) -> bool:
    """Whether `value` (an issue time, a status's as_of, a model's data end) lies after now
    plus the clock skew: a document so dated was not written by a run about its time."""
    return value > (now or dt.datetime.now(UTC)) + clock_skew()


def _check_request_time(value: dt.datetime, info: ValidationInfo) -> dt.datetime:
    """The accepted range for every time field; a field named `as_of` (a run's clock, in
    every job's request) may moreover not lie after now + the clock skew."""
    check_range(value)
    return check_not_future(value) if info.field_name == "as_of" else value


# A pydantic field type for request bodies: ISO-8601 string -> aware UTC datetime within
# the accepted range (and, for `as_of`, not after now + the clock skew).
UTCDateTime = Annotated[
    dt.datetime, BeforeValidator(parse_time), AfterValidator(_check_request_time)
]
