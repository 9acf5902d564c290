"""The api's air-quality index: every point carries the index and category of p50 and of
the band, each location its worst hour of the day with the scheme's statement, and
/v1/aqi the scheme's categories; AIRCAST_AQI_SCHEME switches the scheme."""

from __future__ import annotations

import datetime as dt

from common.core.aqi import CN_HJ633, US_EPA
from common.core.aqi_index import hourly_index
from common.core.config import Settings
from common.serving.api import create_app
from common.storage import open_store
from tests.api_fixtures import make_snapshot, publish


def _get(settings: Settings, path: str) -> dict:
    store = open_store(settings)
    publish(store, make_snapshot())
    return create_app(settings, store).test_client().get(path).get_json()


def _expected(scheme, loc: str) -> list[int | None]:
    """The index recomputed from the snapshot: 12 observed hours, then the forecast."""
    snap = make_snapshot()
    fc, obs = snap.forecasts[loc], snap.observations[loc]
    by_ts = {obs.start + dt.timedelta(hours=k): v for k, v in enumerate(obs.values)}
    history = [by_ts.get(fc.issued_at - dt.timedelta(hours=11 - k)) for k in range(12)]
    series = history + fc.yhat
    return [hourly_index(scheme, "pm2_5", series, 12 + i) for i in range(len(fc.yhat))]


def test_points_carry_index_category_and_band(local_settings: Settings) -> None:
    body = _get(local_settings, "/v1/forecasts/beijing-tiantan")
    points = body["points"]
    assert [p["aqi"] for p in points] == _expected(US_EPA, "beijing-tiantan")
    for p in points:
        assert p["category"] == US_EPA.category(p["aqi"]).name
        assert p["aqi_lower"] <= p["aqi"] <= p["aqi_upper"]
        assert p["category_lower"] == US_EPA.category(p["aqi_lower"]).name
        assert p["category_upper"] == US_EPA.category(p["aqi_upper"]).name
    worst = body["worst"]
    top = max(p["aqi"] for p in points)
    assert worst["aqi"] == top and worst["scheme"] == "us-epa"
    assert worst["target_ts"] == next(p["target_ts"] for p in points if p["aqi"] == top)
    cat = US_EPA.category(top)
    assert (worst["category"], worst["color"], worst["statement"]) == (
        cat.name,
        cat.color,
        cat.statement,
    )


def test_scheme_is_configurable_and_described(local_settings: Settings) -> None:
    cn = local_settings.model_copy(update={"aqi_scheme": "cn-hj633"})
    body = _get(cn, "/v1/forecasts/beijing-dongsi")
    assert [p["aqi"] for p in body["points"]] == _expected(CN_HJ633, "beijing-dongsi")
    assert body["worst"]["scheme"] == "cn-hj633"
    scheme = _get(cn, "/v1/aqi")
    assert scheme["scheme"] == "cn-hj633"
    assert scheme["categories"][0]["name"] == "Excellent"
    assert _get(local_settings, "/v1/aqi")["categories"][2]["name"] == (
        "Unhealthy for Sensitive Groups"
    )


def test_bad_scheme_is_a_config_error(monkeypatch) -> None:
    import pytest

    from common.core.config import ConfigError, load_settings

    monkeypatch.setenv("AIRCAST_AQI_SCHEME", "uk-daqi")
    with pytest.raises(ConfigError, match="AIRCAST_AQI_SCHEME"):
        load_settings()
