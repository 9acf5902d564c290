"""Air-quality index of each forecast point, from the snapshot: pure Python (no pandas), so
the api's cold start stays light; computed once per snapshot and URL (the api caches the
encoded answer), so lookups cost what they did.

The series behind each hour is the observed history up to issued_at followed by the
forecast, so the averaging the scheme asks for (EPA's 12-hour NowCast, 8-hour ozone) covers
forecast hours near the issue time with observed hours, as it would on the day.
"""

from __future__ import annotations

import datetime as dt

from common.core.aqi import NOWCAST, OZONE_8H, Scheme
from common.core.aqi_index import hourly_index
from common.forecasting.snapshot import LocationForecast, RecentObservations
from common.serving.models import AirNow, AqiCategory, AqiScheme, ForecastPoint, WorstHour

HOUR = dt.timedelta(hours=1)
WORST_HOURS = 24  # "the day's worst hour": the next 24 forecast hours


def scheme_model(scheme: Scheme) -> AqiScheme:
    return AqiScheme(
        scheme=scheme.name,
        title=scheme.title,
        categories=[
            AqiCategory(low=c.low, high=c.high, name=c.name, color=c.color, statement=c.statement)
            for c in scheme.categories
        ],
    )


def _history(fc: LocationForecast, recent: RecentObservations | None) -> list[float | None]:
    """Observed values for the 12 hours up to issued_at (None where unknown)."""
    out: list[float | None] = [None] * 12
    if recent is None:
        return out
    for k, value in enumerate(recent.values):
        back = round((fc.issued_at - (recent.start + k * HOUR)) / HOUR)  # hours before t
        if 0 <= back < 12:
            out[11 - back] = value
    return out


def point_indices(
    scheme: Scheme,
    pollutant: str,
    fc: LocationForecast,
    recent: RecentObservations | None,
    n: int,
) -> list[tuple[int | None, int | None, int | None]]:
    """(aqi of p50, of p10, of p90) for horizons 1..n."""
    if pollutant not in scheme.hourly:
        return [(None, None, None)] * n
    history = _history(fc, recent)
    result = []
    series = [history + list(values[:n]) for values in (fc.yhat, fc.yhat_lower, fc.yhat_upper)]
    for i in range(n):
        j = len(history) + i
        mid, low, high = (hourly_index(scheme, pollutant, s, j) for s in series)
        result.append((mid, low, high))
    return result


def worst_hour(
    scheme: Scheme, issued_at: dt.datetime, indices: list[int | None]
) -> WorstHour | None:
    best: tuple[int, int] | None = None
    for i, value in enumerate(indices[:WORST_HOURS]):
        if value is not None and (best is None or value > best[1]):
            best = (i, value)
    if best is None:
        return None
    cat = scheme.category(best[1])
    assert cat is not None
    return WorstHour(
        scheme=scheme.name,
        target_ts=issued_at + (best[0] + 1) * HOUR,
        aqi=best[1],
        category=cat.name,
        color=cat.color,
        statement=cat.statement,
    )


def forecast_points(
    scheme: Scheme,
    pollutant: str,
    fc: LocationForecast,
    recent: RecentObservations | None,
    n: int,
) -> tuple[list[ForecastPoint], WorstHour | None]:
    """The first n points of a forecast with their index and category (p50 and the band),
    and the worst hour of the next 24: one answer for snapshot lookups and online
    predictions alike."""
    aqi = point_indices(scheme, pollutant, fc, recent, max(n, min(WORST_HOURS, len(fc.yhat))))

    def cat(index: int | None) -> str | None:
        category = None if index is None else scheme.category(index)
        return None if category is None else category.name

    points = [
        ForecastPoint(
            target_ts=fc.issued_at + (i + 1) * HOUR,
            horizon_h=i + 1,
            yhat=fc.yhat[i],
            yhat_lower=fc.yhat_lower[i],
            yhat_upper=fc.yhat_upper[i],
            aqi=aqi[i][0],
            category=cat(aqi[i][0]),
            aqi_lower=aqi[i][1],
            aqi_upper=aqi[i][2],
            category_lower=cat(aqi[i][1]),
            category_upper=cat(aqi[i][2]),
        )
        for i in range(min(n, len(fc.yhat)))
    ]
    return points, worst_hour(scheme, fc.issued_at, [a[0] for a in aqi])


AVERAGING = {NOWCAST: "12-hour NowCast", OZONE_8H: "8-hour mean"}


def air_now(scheme: Scheme, pollutant: str, recent: RecentObservations | None) -> AirNow | None:
    """The latest observed hour and its index, with the averaging the scheme reports that
    pollutant with (US EPA PM: the NowCast of the 12 hours up to it): the air quality now,
    as an agency's "current conditions" page shows it."""
    if recent is None:
        return None
    values = recent.values
    last = next((k for k in range(len(values) - 1, -1, -1) if values[k] is not None), None)
    if last is None:
        return None
    value = values[last]
    assert value is not None
    index = hourly_index(scheme, pollutant, values[: last + 1], last)
    category = scheme.category(index)
    return AirNow(
        ts=recent.start + last * HOUR,
        value=value,
        aqi=index,
        category=category.name if category else None,
        color=category.color if category else None,
        statement=category.statement if category else None,
        averaging=AVERAGING.get(scheme.averaging.get(pollutant, ""), "1-hour value"),
    )
