"""Air-quality indices: the agencies' breakpoint tables, in one place, in pure Python (the
index computed from them, in Python and as SQL, is `common.core.aqi_index`).

Why in `core`: the `forecast_aqi` view's SQL is rendered from these tables and rules (one
table, two consumers), and the api computes the same index without pandas, so it must sit
where both may import it and pull nothing heavy.

Schemes (chosen by AIRCAST_AQI_SCHEME):

- `us-epa`: EPA-454/B-24-002 (May 2024), "Technical Assistance Document for the Reporting
  of Daily Air Quality - the Air Quality Index (AQI)", Table 6 (breakpoints, with the 2024
  PM2.5 revision: 9.0 µg/m³ = AQI 50), Table 1 (names, colours); the PM NowCast as EPA's
  "PM NowCast" fact sheet describes it. Concentrations are truncated before lookup
  (PM2.5 to 0.1 µg/m³, PM10 to 1 µg/m³, O3 to 0.001 ppm, NO2 to 1 ppb) and the index is
  rounded to the nearest integer, as the TAD says.
- `cn-hj633`: HJ 633-2012 "Technical Regulation on Ambient Air Quality Index (on trial)",
  Table 1 (IAQI concentration limits, µg/m³) and Table 2 (levels, categories, colours,
  health advice). HJ 633 asks for integer IAQI; we round up, so a value is never shown
  in a better class than its concentration.

Our columns are µg/m³ (Open-Meteo's names). EPA's O3 and NO2 breakpoints are in ppm/ppb:
ppb = µg/m³ x 24.45 / M, the molar volume at 25 °C and 1 atm over the molar mass
(O3 48.00 g/mol, NO2 46.01 g/mol), the conditions EPA's standards are stated at.

Averaging periods: each pollutant has the averaging the scheme reports it with. For an
hourly series (observed history followed by forecast hours) `hourly_index` applies it:
us-epa PM -> 12-hour NowCast then the 24-hour table; O3 -> 8-hour mean with the 8-hour
table, and the 1-hour table where the hour reaches 0.125 ppm (the larger wins; 8-hour
values above 0.200 ppm use the 1-hour table); NO2 -> the 1-hour table. cn-hj633 hourly
(real-time) reporting uses 1-hour O3 and NO2 limits and, for PM, the 24-hour limits on the
hourly value (Table 1, note 3), which is what it does here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

MOLAR_VOLUME_25C = 24.45  # L/mol at 25 °C, 1 atm
NOWCAST, OZONE_8H = "nowcast", "ozone-8h"  # the averagings `hourly_index` applies
NOWCAST_HOURS, NOWCAST_RECENT = 12, 3  # 2 of the 3 most recent hours must be valid
MEAN_8H_HOURS, MEAN_8H_NEED = 8, 6  # the 8-hour mean needs 6 valid hours
OZONE_1H_FROM_PPM = 0.125  # at and above, EPA's 1-hour O3 table also applies
MOLAR_MASS = {"ozone": 48.00, "nitrogen_dioxide": 46.01}


@dataclass(frozen=True)
class Category:
    """One band of the index: its range, name, colour and what people should do."""

    low: int
    high: int
    name: str
    color: str  # hex, as the agency gives it in RGB
    statement: str


@dataclass(frozen=True)
class Table:
    """Breakpoints of one pollutant at one averaging period: rows of (c_lo, c_hi, i_lo, i_hi)
    in `unit`; `decimals` is the truncation before lookup (None: no truncation)."""

    pollutant: str
    averaging: str  # "24h" | "8h" | "1h"
    unit: str  # "µg/m³" | "ppm" | "ppb"
    rows: tuple[tuple[float, float, int, int], ...]
    decimals: int | None = None


@dataclass(frozen=True)
class Scheme:
    name: str
    title: str
    categories: tuple[Category, ...]
    tables: tuple[Table, ...]
    rounding: str  # "nearest" | "up"
    # Per pollutant, the table the hourly index (and the SQL view) uses for one hour's value.
    hourly: dict[str, str]
    # Per pollutant, what the hourly index is of (`hourly_index`; the SQL view renders the
    # same rule with `sql_hourly_index`): NOWCAST (the PM NowCast of the last 12 hours),
    # OZONE_8H (the 8-hour mean, or the 1-hour value where that is higher); absent: the
    # hour's own value.
    averaging: dict[str, str] = field(default_factory=dict)

    def table(self, pollutant: str, averaging: str) -> Table:
        for t in self.tables:
            if t.pollutant == pollutant and t.averaging == averaging:
                return t
        raise KeyError(f"{self.name} has no {averaging} table for {pollutant}")

    def category(self, index: int | None) -> Category | None:
        if index is None:
            return None
        for c in self.categories:
            if index <= c.high:
                return c
        return self.categories[-1]


# --- US EPA (EPA-454/B-24-002, May 2024) ---------------------------------------------------
# Cautionary statements: TAD Table 5, the particle-pollution (PM2.5) column, the pollutant
# this project forecasts by default.
_EPA_SENSITIVE = (
    "People with heart or lung disease, older adults, children, and people of lower "
    "socioeconomic status"
)
US_EPA = Scheme(
    name="us-epa",
    title="US EPA Air Quality Index (2024)",
    categories=(
        Category(0, 50, "Good", "#00E400", "None."),
        Category(
            51,
            100,
            "Moderate",
            "#FFFF00",
            "Unusually sensitive people should consider reducing prolonged or heavy exertion.",
        ),
        Category(
            101,
            150,
            "Unhealthy for Sensitive Groups",
            "#FF7E00",
            f"{_EPA_SENSITIVE} should reduce prolonged or heavy exertion.",
        ),
        Category(
            151,
            200,
            "Unhealthy",
            "#FF0000",
            f"{_EPA_SENSITIVE} should avoid prolonged or heavy exertion; everyone else "
            "should reduce prolonged or heavy exertion.",
        ),
        Category(
            201,
            300,
            "Very Unhealthy",
            "#8F3F97",
            f"{_EPA_SENSITIVE} should avoid all physical activity outdoors. Everyone else "
            "should avoid prolonged or heavy exertion.",
        ),
        Category(
            301,
            500,
            "Hazardous",
            "#7E0023",
            "Everyone should avoid all physical activity outdoors; "
            f"{_EPA_SENSITIVE[0].lower() + _EPA_SENSITIVE[1:]} should remain indoors and "
            "keep activity levels low.",
        ),
    ),
    tables=(
        Table(
            "pm2_5",
            "24h",
            "µg/m³",
            (
                (0.0, 9.0, 0, 50),
                (9.1, 35.4, 51, 100),
                (35.5, 55.4, 101, 150),
                (55.5, 125.4, 151, 200),
                (125.5, 225.4, 201, 300),
                (225.5, 325.4, 301, 500),
            ),
            1,
        ),
        Table(
            "pm10",
            "24h",
            "µg/m³",
            (
                (0, 54, 0, 50),
                (55, 154, 51, 100),
                (155, 254, 101, 150),
                (255, 354, 151, 200),
                (355, 424, 201, 300),
                (425, 604, 301, 500),
            ),
            0,
        ),
        Table(
            "ozone",
            "8h",
            "ppm",
            (
                (0.000, 0.054, 0, 50),
                (0.055, 0.070, 51, 100),
                (0.071, 0.085, 101, 150),
                (0.086, 0.105, 151, 200),
                (0.106, 0.200, 201, 300),
            ),
            3,
        ),
        Table(
            "ozone",
            "1h",
            "ppm",
            (
                (0.125, 0.164, 101, 150),
                (0.165, 0.204, 151, 200),
                (0.205, 0.404, 201, 300),
                (0.405, 0.604, 301, 500),
            ),
            3,
        ),
        Table(
            "nitrogen_dioxide",
            "1h",
            "ppb",
            (
                (0, 53, 0, 50),
                (54, 100, 51, 100),
                (101, 360, 101, 150),
                (361, 649, 151, 200),
                (650, 1249, 201, 300),
                (1250, 2049, 301, 500),
            ),
            0,
        ),
    ),
    rounding="nearest",
    hourly={"pm2_5": "24h", "pm10": "24h", "ozone": "8h", "nitrogen_dioxide": "1h"},
    averaging={"pm2_5": "nowcast", "pm10": "nowcast", "ozone": "ozone-8h"},
)

# --- China HJ 633-2012 ---------------------------------------------------------------------
_IAQI = (0, 50, 100, 150, 200, 300, 400, 500)


def _hj(limits: Sequence[float]) -> tuple[tuple[float, float, int, int], ...]:
    """HJ 633 Table 1 gives one limit per IAQI level; consecutive limits bound a row."""
    return tuple((limits[i], limits[i + 1], _IAQI[i], _IAQI[i + 1]) for i in range(len(limits) - 1))


CN_HJ633 = Scheme(
    name="cn-hj633",
    title="China AQI (HJ 633-2012)",
    categories=(  # Table 2: category, colour, recommended measures (English rendering)
        Category(0, 50, "Excellent", "#00E400", "All groups can be active outdoors as usual."),
        Category(
            51,
            100,
            "Good",
            "#FFFF00",
            "A very few unusually sensitive people should reduce outdoor activity.",
        ),
        Category(
            101,
            150,
            "Lightly polluted",
            "#FF7E00",
            "Children, older people and people with heart or respiratory disease should "
            "reduce long or strenuous outdoor exercise.",
        ),
        Category(
            151,
            200,
            "Moderately polluted",
            "#FF0000",
            "Children, older people and people with heart or respiratory disease should "
            "avoid long or strenuous outdoor exercise; others should reduce outdoor exercise.",
        ),
        Category(
            201,
            300,
            "Heavily polluted",
            "#99004C",
            "Children, older people and people with heart or lung disease should stay "
            "indoors and stop outdoor exercise; others should reduce outdoor exercise.",
        ),
        Category(
            301,
            500,
            "Severely polluted",
            "#7E0023",
            "Children, older people and the sick should stay indoors and avoid exertion; "
            "others should avoid outdoor activity.",
        ),
    ),
    tables=(
        Table("pm2_5", "24h", "µg/m³", _hj((0, 35, 75, 115, 150, 250, 350, 500))),
        Table("pm10", "24h", "µg/m³", _hj((0, 50, 150, 250, 350, 420, 500, 600))),
        Table("ozone", "1h", "µg/m³", _hj((0, 160, 200, 300, 400, 800, 1000, 1200))),
        Table("ozone", "8h", "µg/m³", _hj((0, 100, 160, 215, 265, 800))),
        Table("nitrogen_dioxide", "1h", "µg/m³", _hj((0, 100, 200, 700, 1200, 2340, 3090, 3840))),
        Table("nitrogen_dioxide", "24h", "µg/m³", _hj((0, 40, 80, 180, 280, 565, 750, 940))),
    ),
    rounding="up",
    hourly={"pm2_5": "24h", "pm10": "24h", "ozone": "1h", "nitrogen_dioxide": "1h"},
)

SCHEMES: dict[str, Scheme] = {s.name: s for s in (US_EPA, CN_HJ633)}


def get_scheme(name: str) -> Scheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown AQI scheme {name!r}; known: {', '.join(SCHEMES)}") from None
