"""The air-quality indices against the agencies' own tables and worked example.

Sources (cited per test):
- EPA-454/B-24-002, May 2024, "Technical Assistance Document for the Reporting of Daily Air
  Quality - the Air Quality Index (AQI)" (TAD 2024): Table 1 (names, colours), Table 6
  (breakpoints, with the revised PM2.5 breakpoints), section IV (truncation, equation).
- EPA, "PM NowCast" fact sheet and its "Computing the NowCast" example (12 hours
  50 80 75 90 82 53 64 74 21 10 16 13 µg/m³, oldest first -> 17.4 µg/m³).
- HJ 633-2012, "Technical Regulation on Ambient Air Quality Index (on trial)", Table 1
  (IAQI concentration limits) and Table 2 (categories, colours).
"""

from __future__ import annotations

import pytest

from common.core.aqi import CN_HJ633, SCHEMES, US_EPA, get_scheme
from common.core.aqi_index import convert, hourly_index, index_of, nowcast


def test_epa_nowcast_worked_example():
    """EPA's "Computing the NowCast" example: weight 1 - 80/90 < 0.5 so 0.5; result 17.4."""
    hours = [50, 80, 75, 90, 82, 53, 64, 74, 21, 10, 16, 13]
    assert round(nowcast(hours), 1) == 17.4
    # ... and its AQI with the 2024 PM2.5 row 9.1-35.4 -> 51-100 (truncate to 17.4 first):
    # (100 - 51) / (35.4 - 9.1) x (17.4 - 9.1) + 51 = 66.46 -> 66.
    assert index_of(US_EPA, "pm2_5", "24h", nowcast(hours)) == 66


def test_nowcast_rules():
    """Steady air: the plain 12-hour mean (weight 1). Fewer than 2 of the last 3 hours: none
    (the NowCast completeness rule)."""
    assert nowcast([20.0] * 12) == pytest.approx(20.0)
    assert nowcast([20.0] * 10 + [None, None]) is None
    assert nowcast([20.0] * 10 + [None, 30.0]) is not None


@pytest.mark.parametrize(
    ("ugm3", "aqi"),
    [  # TAD 2024 Table 6, PM2.5 24-hour (µg/m³): the ends of each row map to the ends of
        # its AQI range; truncation to 0.1 puts 9.05 on 9.0.
        (0.0, 0),
        (9.0, 50),
        (9.05, 50),
        (9.1, 51),
        (35.4, 100),
        (35.5, 101),
        (55.4, 150),
        (55.5, 151),
        (125.4, 200),
        (125.5, 201),
        (225.4, 300),
        (225.5, 301),
        (325.4, 500),
        (900.0, 500),
    ],
)
def test_epa_pm25_2024_breakpoints(ugm3: float, aqi: int):
    assert index_of(US_EPA, "pm2_5", "24h", ugm3) == aqi


def test_epa_pm10_ozone_no2_rows_and_unit_conversion():
    """TAD 2024 Table 6: PM10 154 -> 100, 425-604 -> 301-500; O3 8-hour 0.070 ppm -> 100;
    O3 1-hour starts at 0.125 ppm (101); NO2 1-hour 100 ppb -> 100. Gases are given in µg/m³
    here and converted at 25 °C: ppb = µg/m³ x 24.45 / M."""
    assert index_of(US_EPA, "pm10", "24h", 154) == 100
    assert index_of(US_EPA, "pm10", "24h", 425) == 301
    o3 = lambda ppm: ppm * 1000 * 48.00 / 24.45  # noqa: E731
    no2 = lambda ppb: ppb * 46.01 / 24.45  # noqa: E731
    assert convert("ozone", o3(0.070), "ppm") == pytest.approx(0.070)
    assert index_of(US_EPA, "ozone", "8h", o3(0.070)) == 100
    assert index_of(US_EPA, "ozone", "8h", o3(0.055)) == 51
    assert index_of(US_EPA, "ozone", "1h", o3(0.125)) == 101
    assert index_of(US_EPA, "ozone", "1h", o3(0.100)) is None  # 1-hour O3 defines >= 101 only
    assert index_of(US_EPA, "nitrogen_dioxide", "1h", no2(100)) == 100
    assert index_of(US_EPA, "nitrogen_dioxide", "1h", no2(101)) == 101


def test_epa_categories_and_colours():
    """TAD 2024 Table 1: six names and their RGB colours."""
    names = [(c.low, c.high, c.name, c.color) for c in US_EPA.categories]
    assert names == [
        (0, 50, "Good", "#00E400"),
        (51, 100, "Moderate", "#FFFF00"),
        (101, 150, "Unhealthy for Sensitive Groups", "#FF7E00"),
        (151, 200, "Unhealthy", "#FF0000"),
        (201, 300, "Very Unhealthy", "#8F3F97"),
        (301, 500, "Hazardous", "#7E0023"),
    ]
    assert US_EPA.category(66).name == "Moderate"
    assert all(c.statement for c in US_EPA.categories)


@pytest.mark.parametrize(
    ("pollutant", "averaging", "limits"),
    [  # HJ 633-2012 Table 1: the concentration limit (µg/m³) at IAQI 0, 50, 100, ... 500
        ("pm2_5", "24h", (0, 35, 75, 115, 150, 250, 350, 500)),
        ("pm10", "24h", (0, 50, 150, 250, 350, 420, 500, 600)),
        ("ozone", "1h", (0, 160, 200, 300, 400, 800, 1000, 1200)),
        ("ozone", "8h", (0, 100, 160, 215, 265, 800)),
        ("nitrogen_dioxide", "1h", (0, 100, 200, 700, 1200, 2340, 3090, 3840)),
        ("nitrogen_dioxide", "24h", (0, 40, 80, 180, 280, 565, 750, 940)),
    ],
)
def test_hj633_limits(pollutant: str, averaging: str, limits: tuple[int, ...]):
    levels = (0, 50, 100, 150, 200, 300, 400, 500)
    for limit, iaqi in zip(limits, levels, strict=False):
        assert index_of(CN_HJ633, pollutant, averaging, limit) == iaqi


def test_hj633_interpolation_rounds_up_and_categories():
    """HJ 633 equation (1): IAQI = (IAQI_hi - IAQI_lo)/(BP_hi - BP_lo) x (C - BP_lo) + IAQI_lo.
    PM2.5 80 µg/m³: 50/40 x 5 + 100 = 106.25 -> 107 (rounded up); Table 2: Lightly polluted,
    orange."""
    assert index_of(CN_HJ633, "pm2_5", "24h", 80) == 107
    cat = CN_HJ633.category(107)
    assert (cat.name, cat.color) == ("Lightly polluted", "#FF7E00")
    assert [c.color for c in CN_HJ633.categories][-2:] == ["#99004C", "#7E0023"]


def test_hourly_index_applies_each_schemes_averaging():
    """us-epa PM: the NowCast of the last 12 hours; cn-hj633 PM: the hour's value on the
    24-hour limits (HJ 633 real-time reporting)."""
    series = [50, 80, 75, 90, 82, 53, 64, 74, 21, 10, 16, 13]
    assert hourly_index(US_EPA, "pm2_5", series, 11) == 66
    assert hourly_index(CN_HJ633, "pm2_5", series, 11) == index_of(CN_HJ633, "pm2_5", "24h", 13)
    steady = [o3 for o3 in [100.0] * 8]  # 100 µg/m³ O3 ~ 0.051 ppm, 8-hour mean
    assert hourly_index(US_EPA, "ozone", steady, 7) == index_of(US_EPA, "ozone", "8h", 100.0)
    assert hourly_index(US_EPA, "temperature_2m", steady, 7) is None


def test_unknown_scheme_is_refused():
    assert set(SCHEMES) == {"us-epa", "cn-hj633"}
    with pytest.raises(ValueError, match="unknown AQI scheme"):
        get_scheme("uk-daqi")
