"""An air-quality index computed from the tables of `common.core.aqi`: in Python for the
api, and as SQL for the `forecast_aqi` view, rendered from the same rows so the two cannot
disagree on a breakpoint (the rules are in `common.core.aqi`'s docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from common.core.aqi import (
    MEAN_8H_HOURS,
    MEAN_8H_NEED,
    MOLAR_MASS,
    MOLAR_VOLUME_25C,
    NOWCAST,
    NOWCAST_HOURS,
    NOWCAST_RECENT,
    OZONE_1H_FROM_PPM,
    OZONE_8H,
    Scheme,
    Table,
)


def convert(pollutant: str, ugm3: float, unit: str) -> float:
    """µg/m³ -> the table's unit (ppm/ppb at 25 °C, 1 atm for gases)."""
    if unit == "µg/m³":
        return ugm3
    ppb = ugm3 * MOLAR_VOLUME_25C / MOLAR_MASS[pollutant]
    return ppb / 1000 if unit == "ppm" else ppb


def _truncate(value: float, decimals: int | None) -> float:
    if decimals is None:
        return value
    scale = 10**decimals
    return math.floor(value * scale + 1e-9) / scale  # the epsilon absorbs binary noise


def _round(value: float, rounding: str) -> int:
    if rounding == "up":
        return math.ceil(value - 1e-9)
    return math.floor(value + 0.5)


def sub_index(scheme: Scheme, table: Table, concentration: float | None) -> int | None:
    """The index of one concentration (in the table's unit) by linear interpolation within its
    row: I = (I_hi - I_lo) / (C_hi - C_lo) x (C - C_lo) + I_lo. Beyond the table: 500 (the
    top of the scale); below its first row (O3 1-hour): None (not defined there)."""
    if concentration is None or math.isnan(concentration):
        return None
    c = _truncate(max(concentration, 0.0), table.decimals)
    rows = table.rows
    if c < rows[0][0]:
        return None
    for c_lo, c_hi, i_lo, i_hi in rows:
        if c <= c_hi:
            c_lo = min(c_lo, c)  # (cannot happen with truncation; guards float edges)
            return _round((i_hi - i_lo) / (c_hi - c_lo) * (c - c_lo) + i_lo, scheme.rounding)
    return 500


def index_of(scheme: Scheme, pollutant: str, averaging: str, ugm3: float | None) -> int | None:
    """The index of a concentration in µg/m³ averaged over `averaging`."""
    if ugm3 is None:
        return None
    table = scheme.table(pollutant, averaging)
    return sub_index(scheme, table, convert(pollutant, ugm3, table.unit))


def nowcast(values: Sequence[float | None]) -> float | None:
    """EPA's PM NowCast of the last 12 hourly values (oldest first, the current hour last).

    weight = min / max over the 12 hours, at least 0.5; NowCast = sum(w^i c_i) / sum(w^i)
    with i the hours ago (missing hours drop out of both sums). Not reported unless 2 of
    the 3 most recent hours are valid.
    """
    recent = list(values)[-NOWCAST_HOURS:]
    valid = [v for v in recent if v is not None and not math.isnan(v)]
    last3 = [v for v in recent[-NOWCAST_RECENT:] if v is not None and not math.isnan(v)]
    if len(last3) < 2 or not valid:
        return None
    hi, lo = max(valid), min(valid)
    w = 1.0 if hi <= 0 else max(lo / hi, 0.5)
    num = den = 0.0
    for ago, v in enumerate(reversed(recent)):
        if v is not None and not math.isnan(v):
            num += w**ago * v
            den += w**ago
    return num / den


def _mean(values: Sequence[float | None], need: int) -> float | None:
    valid = [v for v in values if v is not None and not math.isnan(v)]
    return sum(valid) / len(valid) if len(valid) >= need else None


def hourly_index(
    scheme: Scheme, pollutant: str, series: Sequence[float | None], i: int
) -> int | None:
    """The index at hour `i` of an hourly µg/m³ series (history then forecast), with the
    averaging the scheme reports that pollutant with (see the module docstring)."""
    if pollutant not in scheme.hourly:
        return None
    current = series[i]
    how = scheme.averaging.get(pollutant)
    if how == NOWCAST:
        window = series[max(0, i - NOWCAST_HOURS + 1) : i + 1]
        return index_of(scheme, pollutant, scheme.hourly[pollutant], nowcast(window))
    if how == OZONE_8H:
        mean = _mean(series[max(0, i - MEAN_8H_HOURS + 1) : i + 1], MEAN_8H_NEED)
        eight = index_of(scheme, pollutant, "8h", mean)
        ppm = None if current is None else convert(pollutant, current, "ppm")
        one = None
        if ppm is not None and ppm >= OZONE_1H_FROM_PPM:
            one = index_of(scheme, pollutant, "1h", current)
        if eight == 500 and one is None:  # 8-hour values above 0.200 ppm are not defined
            eight = 300
        found = [x for x in (eight, one) if x is not None]
        return max(found) if found else None
    return index_of(scheme, pollutant, scheme.hourly[pollutant], current)


def sql_index(scheme: Scheme, pollutant: str, column: str, averaging: str | None = None) -> str:
    """A SQL expression (BigQuery dialect, portable to DuckDB) for the index of the value of
    `column` (µg/m³) with the scheme's `averaging` table (default: its hourly one); rendered
    from the same rows `sub_index` uses, so the view and the api cannot disagree on a
    breakpoint."""
    table = scheme.table(pollutant, averaging or scheme.hourly[pollutant])
    factor = convert(pollutant, 1.0, table.unit)
    x = f"GREATEST({column}, 0) * {factor!r}" if factor != 1.0 else f"GREATEST({column}, 0)"
    if table.decimals is not None:
        scale = 10**table.decimals
        x = f"(FLOOR({x} * {scale} + 1e-9) / {scale})"
    else:
        x = f"({x})"
    arms = []
    for c_lo, c_hi, i_lo, i_hi in table.rows:
        raw = f"{(i_hi - i_lo) / (c_hi - c_lo)!r} * ({x} - {c_lo!r}) + {i_lo}"
        rounded = f"CEIL({raw} - 1e-9)" if scheme.rounding == "up" else f"FLOOR({raw} + 0.5)"
        arms.append(f"WHEN {x} <= {c_hi!r} THEN CAST({rounded} AS INT64)")
    low = table.rows[0][0]
    first = f"WHEN {column} IS NULL THEN NULL WHEN {x} < {low!r} THEN NULL " if low > 0 else ""
    if not first:
        first = f"WHEN {column} IS NULL THEN NULL "
    return f"CASE {first}{' '.join(arms)} ELSE 500 END"


def sql_hourly_inputs(scheme: Scheme, pollutant: str, current: str, mean_8h: str) -> dict[str, str]:
    """The sub-indices `sql_hourly_index` combines, as SQL to compute one level below it
    (each once: SQL has no other way to name a value, and repeating these large CASEs in
    one expression makes it slow to translate): for OZONE_8H, `eight` (the 8-hour mean's
    index) and `one` (the hour's 1-hour index where that table applies); else none."""
    if scheme.averaging.get(pollutant) != OZONE_8H:
        return {}
    ppm = convert(pollutant, 1.0, "ppm")
    return {
        "eight": sql_index(scheme, pollutant, mean_8h, "8h"),
        "one": f"CASE WHEN {current} * {ppm!r} >= {OZONE_1H_FROM_PPM!r} THEN "
        f"{sql_index(scheme, pollutant, current, '1h')} END",
    }


def sql_hourly_index(
    scheme: Scheme, pollutant: str, current: str, nowcast_sql: str, inputs: dict[str, str]
) -> str:
    """SQL for `hourly_index`, the same rule: given the hour's value (`current`), the NowCast
    of its 12 hours (`nowcast_sql`) and the columns holding `sql_hourly_inputs` by name."""
    how = scheme.averaging.get(pollutant)
    if how == NOWCAST:
        return sql_index(scheme, pollutant, nowcast_sql)
    if how == OZONE_8H:
        eight, one = inputs["eight"], inputs["one"]
        # 8-hour values above 0.200 ppm are not defined: 300 unless the 1-hour table applies
        eight = f"CASE WHEN {one} IS NULL AND {eight} = 500 THEN 300 ELSE {eight} END"
        return f"NULLIF(GREATEST(COALESCE({eight}, -1), COALESCE({one}, -1)), -1)"
    return sql_index(scheme, pollutant, current)


def sql_category(scheme: Scheme, index_sql: str) -> str:
    """SQL for the category name of an index expression."""
    arms = " ".join(f"WHEN {index_sql} <= {c.high} THEN '{c.name}'" for c in scheme.categories)
    return f"CASE WHEN {index_sql} IS NULL THEN NULL {arms} ELSE '{scheme.categories[-1].name}' END"
