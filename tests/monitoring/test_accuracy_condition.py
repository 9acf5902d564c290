"""The accuracy condition's whole report on a small warehouse worked out in advance: two
targets, each with a production version, a retired version, a place served the
network's weights (no state of its own when its forecasts were issued), rows written
before the combination (no `yhat_model`), horizons beyond the gate's groups, CAMS on some
rows, stored network weights and places' own. The expected JSON is what the condition
reported when it read the window in two queries (every version's record, then the served
version's by new place); reading it once, and telling new places by their own weights
rather than by the training window (the same places here), must not change a field but
the ones added since (`place_weights`) and the new-place wording."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pandas as pd
import pytest

from common.core.config import Settings
from common.forecasting.registry import Registry
from common.forecasting.versions import GroupScores, ModelMetadata
from common.monitoring import accuracy_condition
from common.monitoring import thresholds as th
from common.runtime.services import Services
from common.storage import open_store
from common.warehouse import open_warehouse
from tests.monitoring.place_weights_rows import place_weights_row

T = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
CUTOFF = T - 24 * H  # the production versions' training cut-off
METADATA = Path(__file__).parents[1] / "fixtures" / "contracts"
METADATA /= "models__aircast__20240228T0000Z-f87f769861__metadata.json"


def _forecasts(
    version: str, target: str, place: str, issued: dt.datetime, horizons: range, **cols: Any
) -> pd.DataFrame:
    """A run's forecasts: yhat above the observed value (`_value`) by the version's bias
    and (h mod 3) more, in a band of +-3.5 (so some rows fall outside it)."""
    hours = list(horizons)
    target_ts = [issued + h * H for h in hours]
    bias = {"v0": 6.0, "v1": 1.8, "w0": 0.5, "w1": 2.0}[version]
    yhat = [_value(target, place, t) + bias + h % 3 for h, t in zip(hours, target_ts, strict=True)]
    frame = pd.DataFrame(
        {
            "run_id": f"pred-{version}-{issued:%H}",
            "model_version": version,
            "location_id": place,
            "target": target,
            "issued_at": issued,
            "target_ts": target_ts,
            "horizon_h": hours,
            "yhat": yhat,
            "yhat_lower": [y - 3.5 for y in yhat],
            "yhat_upper": [y + 3.5 for y in yhat],
            "created_at": issued,
        }
    )
    return frame.assign(**cols)


def _value(target: str, place: str, ts: dt.datetime) -> float:
    """The observed value: a saw-tooth in the hour, different per place and target."""
    k = int((T - ts) / H)
    base = {"a": 20.0, "c": 35.0}[place] * (2 if target == "pm10" else 1)
    return base + (k * 7) % 11


# The places' own weights stored by predict (target, place, issue time -> each group's
# model / persistence / seasonal naive shares): a has weights of its own at every issue
# time of the production versions' forecasts, c none before they were issued. Of pm2_5's
# newest states within a day of T, a's (T - 8 h) and c's (T - 2 h) are served now: the
# model leads a's 1-3 h, persistence its 4-12 h, seasonal naive its 13-24 h; c's are
# the model's everywhere. The states at T - 12 h (superseded) and T + 1 h (after as_of)
# must not count.
GROUPS = ("1-3", "4-12", "13-24")
A_NOW = ((0.7, 0.2, 0.1), (0.2, 0.6, 0.2), (0.1, 0.3, 0.6))
C_NOW = ((0.5, 0.3, 0.2), (0.4, 0.3, 0.3), (0.34, 0.33, 0.33))
OTHER = ((0.0, 0.0, 1.0),) * 3
STATES: dict[tuple[str, str, dt.datetime], tuple[tuple[float, float, float], ...]] = {
    ("pm2_5", "a", T - 30 * H): OTHER,
    ("pm2_5", "a", T - 12 * H): OTHER,
    ("pm2_5", "a", T - 8 * H): A_NOW,
    ("pm2_5", "c", T - 2 * H): C_NOW,
    ("pm2_5", "a", T + H): OTHER,
    ("pm10", "a", T - 6 * H): A_NOW,
}


def _states(states: dict) -> pd.DataFrame:
    """place_combination_weights rows as predict writes them (one per place and group)."""
    rows = [
        place_weights_row(
            target,
            place,
            at,
            group,
            shares,
            model_version="v1" if target == "pm2_5" else "w1",
            gap=0.1,
            started_at=T - 30 * H,
            verified=1,
        )
        for (target, place, at), groups in states.items()
        for group, shares in zip(GROUPS, groups, strict=True)
    ]
    return pd.DataFrame(rows)


def _load(settings: Settings, states: dict = STATES) -> Services:
    wh = open_warehouse(settings)
    wh.ensure_schema()
    wh.append(
        "locations",
        pd.DataFrame(
            {
                "location_id": ["a", "c"],
                "name": ["A", "C"],
                "source": "synthetic",
                "active": True,
                "updated_at": T - 100 * H,
            }
        ),
    )
    # a observed for two days (through the versions' last training day); c only from
    # T - 12 h: new to both production versions.
    rows = [("a", T - k * H) for k in range(48)] + [("c", T - k * H) for k in range(12)]
    obs = pd.DataFrame(rows, columns=["location_id", "ts"])
    obs["pm2_5"] = [_value("pm2_5", p, t) for p, t in rows]
    obs["pm10"] = [_value("pm10", p, t) for p, t in rows]
    wh.append("observations_raw", obs.assign(source="synthetic", run_id="ing", ingested_at=T))
    model = {"yhat_model": None}
    forecasts = [
        # the retired pm2_5 version, written before the combination
        _forecasts("v0", "pm2_5", "a", T - 20 * H, range(1, 13)),
        # pm2_5's production version: as served with the model's own beside it, ...
        _forecasts("v1", "pm2_5", "a", T - 8 * H, range(1, 9)),
        _forecasts("v1", "pm2_5", "a", T - 30 * H, range(25, 31)),  # beyond 24 h
        _forecasts("v1", "pm2_5", "c", T - 10 * H, range(1, 11)),  # a new place
        # ... and rows it wrote before the combination
        _forecasts("v1", "pm2_5", "a", T - 12 * H, range(1, 4)),
        # pm10's production version and its retired one
        _forecasts("w1", "pm10", "a", T - 6 * H, range(1, 7)),
        _forecasts("w1", "pm10", "c", T - 5 * H, range(1, 5)),
        _forecasts("w0", "pm10", "a", T - 16 * H, range(1, 5)),
    ]
    served = [f.assign(yhat_model=f["yhat"] + 1.5 - f["horizon_h"] % 2) for f in forecasts[1:4]]
    served += [forecasts[5].assign(yhat_model=forecasts[5]["yhat"] - 3), forecasts[6]]
    frame = pd.concat([forecasts[0].assign(**model), *served, forecasts[4].assign(**model)])
    frame = pd.concat([frame, forecasts[7].assign(**model)], ignore_index=True)
    wh.append("forecasts", frame)
    # CAMS for a's pm2_5 from T - 6 h on, issued at T - 12 h
    cams_ts = [T - k * H for k in range(7)]
    wh.append(
        "air_quality_forecasts",
        pd.DataFrame(
            {
                "location_id": "a",
                "issued_at": T - 12 * H,
                "ts": cams_ts,
                "pm2_5": [_value("pm2_5", "a", t) - 5 for t in cams_ts],
                "provider": "cams",
                "source": "open-meteo",
                "run_id": "ing-c",
                "ingested_at": T - 12 * H,
            }
        ),
    )
    weights = []
    for version, target, horizons in (("v1", "pm2_5", range(1, 31)), ("w1", "pm10", range(1, 7))):
        for h in horizons:
            shares = {"model": 0.5 + h / 200, "persistence": 0.3, "seasonal_naive": 0.2 - h / 200}
            weights += [
                {
                    "target": target,
                    "as_of": T - H,
                    "model_version": version,
                    "horizon_h": h,
                    "expert": e,
                    "weight": w,
                    "cum_loss": 1.0,
                    "gap": 0.1,
                    "verified_through": T - H,
                    "verified": 1,
                    "run_id": "pred",
                    "created_at": T - H,
                }
                for e, w in shares.items()
            ]
    wh.append("combination_weights", pd.DataFrame(weights))
    wh.append("place_combination_weights", _states(states))
    settings = settings.model_copy(update={"targets": "pm2_5,pm10"})
    store = open_store(settings)
    start = ModelMetadata.model_validate_json(METADATA.read_text())
    for target, version in (("pm2_5", "v1"), ("pm10", "w1")):
        registry = Registry.of_target(store, settings, target)
        data = start.data.model_copy(update={"window": (CUTOFF - 30 * 24 * H, CUTOFF)})
        meta = start.model_copy(update={"version": version, "target": target, "data": data})
        registry.save_metadata(meta)
        registry.promote(version, 0)
    return cast(Services, SimpleNamespace(warehouse=wh, settings=settings, store=store))


# The condition's JSON on this warehouse as reported by the two-query code (a42a430).
EXPECTED = Path(__file__).parents[1] / "fixtures" / "monitoring" / "accuracy_condition.json"
# What the places' own weights add to each served version (STATES), by hand.
NO_OFFSETS = {"lower_mean": 0.0, "upper_mean": 0.0, "at_clip": 0}
PM25_PLACES = {
    "1-3": {
        "places": 2,
        "leading": {"model": 2, "persistence": 0, "seasonal_naive": 0},
        "model_weight": {"min": 0.5, "mean": 0.6, "max": 0.7},
        "band_offsets": NO_OFFSETS,
    },
    "4-12": {
        "places": 2,
        "leading": {"model": 1, "persistence": 1, "seasonal_naive": 0},
        "model_weight": {"min": 0.2, "mean": 0.3, "max": 0.4},
        "band_offsets": NO_OFFSETS,
    },
    "13-24": {
        "places": 2,
        "leading": {"model": 1, "persistence": 0, "seasonal_naive": 1},
        "model_weight": {"min": 0.1, "mean": 0.22, "max": 0.34},
        "band_offsets": NO_OFFSETS,
    },
}
PM10_PLACES = {
    "1-3": {
        "places": 1,
        "leading": {"model": 1, "persistence": 0, "seasonal_naive": 0},
        "model_weight": {"min": 0.7, "mean": 0.7, "max": 0.7},
        "band_offsets": NO_OFFSETS,
    },
    "4-12": {
        "places": 1,
        "leading": {"model": 0, "persistence": 1, "seasonal_naive": 0},
        "model_weight": {"min": 0.2, "mean": 0.2, "max": 0.2},
        "band_offsets": NO_OFFSETS,
    },
    "13-24": {
        "places": 1,
        "leading": {"model": 0, "persistence": 0, "seasonal_naive": 1},
        "model_weight": {"min": 0.1, "mean": 0.1, "max": 0.1},
        "band_offsets": NO_OFFSETS,
    },
}


def _expected() -> dict[str, Any]:
    """EXPECTED with what was added since: the places' own weights beside the network's,
    in the JSON and the detail, and the new places' wording (the same places)."""
    doc = json.loads(EXPECTED.read_text())
    doc["served"][0]["place_weights"] = PM25_PLACES
    doc["served"][1]["place_weights"] = PM10_PLACES
    said = (
        "; 2 places on their own weights, led by model/persistence/seasonal naive "
        "1-3 h 2/0/0, 4-12 h 1/1/0, 13-24 h 1/0/1; places on the network's weights "
        "(none of their own yet): "
    )
    doc["detail"] = doc["detail"].replace("; places new to it: ", said)
    return doc


def test_the_condition_reports_what_it_reported_before_from_one_read(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(th, "ACCURACY_MIN_ROWS", 5)  # judged: the detail names everything
    services = _load(settings)
    queries: list[str] = []
    query = services.warehouse.query

    def counted(sql: str, params: Any = None) -> pd.DataFrame:
        queries.append(sql)
        return query(sql, params)

    monkeypatch.setattr(services.warehouse, "query", counted)
    got = accuracy_condition.accuracy(services, T).to_json()
    assert got == _expected()
    # one read of the forecasts, which joins the places' own weights at each issue time;
    # the others read the stored weights, the network's and the places', per target
    assert sum("FROM forecasts" in q for q in queries) == 1, queries
    (read,) = [q for q in queries if "FROM forecasts" in q]
    assert "place_combination_weights" in read
    assert sum("FROM combination_weights" in q for q in queries) == 2
    assert sum("place_combination_weights" in q for q in queries) == 3

    # By hand: pm2_5's v1 at the places it knows (a) served 1.8 + (h mod 3) above what
    # was observed: 2.8 on average over each full cycle of horizons; 6 forecasts at 1-3 h
    # (issued T - 8 h, and T - 12 h before the combination), 5 at 4-12 h, 6 at 25-30 h;
    # c's 10 apart.
    (v1, w1) = got["served"]
    assert [v1["target"], v1["version"], w1["target"], w1["version"]] == [
        "pm2_5", "v1", "pm10", "w1"
    ]  # fmt: skip
    assert {g: h["n"] for g, h in v1["horizons"].items()} == {"1-3": 6, "4-12": 5, "25-168": 6}
    assert v1["horizons"]["1-3"]["mae"] == 2.8 and v1["new_places"]["n"] == 10
    assert got["history"] == ["v0", "w0"] and got["versions"]["v1"]["n"] == 27
    assert got["versions"]["v0"]["mae"] == 7.0  # the retired version's bias 6 + 1


def test_the_groups_the_gate_served_as_persistence_are_named_beside_the_weights(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """A version the gate started as persistence at some groups says so, by the same
    group names as the monitor's horizons and weights; the other target's does not."""
    monkeypatch.setattr(th, "ACCURACY_MIN_ROWS", 5)
    services = _load(settings)
    registry = Registry.of_target(services.store, services.settings, "pm2_5")
    meta = registry.metadata("v1")
    held = [GroupScores(group="1-3", n=300, mae=10.6, persistence_mae=10.0)]
    holdout = meta.metrics.holdout.model_copy(update={"served_as_persistence": held})
    metrics = meta.metrics.model_copy(update={"holdout": holdout})
    registry.save_metadata(meta.model_copy(update={"metrics": metrics}))
    got = accuracy_condition.accuracy(services, T).to_json()
    v1, w1 = got["served"]
    assert v1["served_as_persistence"] == ["1-3"] and "served_as_persistence" not in w1
    assert set(v1["served_as_persistence"]) <= set(v1["horizons"]) & set(v1["weights"])
    expected = _expected()
    assert v1 == {**expected["served"][0], "served_as_persistence": ["1-3"]}
    assert got["value"] == expected["value"] and got["detail"].startswith("pm2_5 v1 as served")
    said = "; served as persistence from its first hour at 1-3 h (the gate); weights"
    assert said in got["detail"]


def test_a_place_is_apart_while_served_the_networks_weights_and_joins_once_it_has_its_own(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """Apart are the forecasts whose place had no weights of its own when they were issued,
    whatever the training window: a, observed through v1's training window, had none at
    T - 8 h (its state started at T - 7 h, after that issue: it does not count back), so
    its 8 forecasts issued then are apart; c, which v1 never saw, had its own at T - 10 h,
    so its 10 join the rest. (By the training window it was the other way round.)"""
    monkeypatch.setattr(th, "ACCURACY_MIN_ROWS", 5)
    states = {k: v for k, v in STATES.items() if k[:2] != ("pm2_5", "c")}
    states = {k: v for k, v in states.items() if k != ("pm2_5", "a", T - 8 * H)}
    states |= {("pm2_5", "a", T - 7 * H): A_NOW, ("pm2_5", "c", T - 10 * H): C_NOW}
    got = accuracy_condition.accuracy(_load(settings, states), T).to_json()
    v1, w1 = got["served"]
    before = _expected()["served"]
    # a's 8 (1-8 h: 3 at 1-3 h, 5 at 4-12 h) apart, c's 10 (3 + 7) in
    assert v1["new_places"]["n"] == 8 and v1["n"] == 17 - 8 + 10
    assert {g: h["n"] for g, h in v1["horizons"].items()} == {"1-3": 6, "4-12": 7, "25-168": 6}
    # a's rows issued at T - 8 h served 1.8 + (h mod 3) above what was observed, h = 1..8
    assert v1["new_places"]["mae"] == (8 * 1.8 + 9) / 8
    assert w1 == before[1]  # pm10's places are what they were
    assert v1["place_weights"] == PM25_PLACES  # the newest states: a's T - 7 h, c's T - 10 h
    assert got["detail"].endswith(f"ratio {v1['new_places']['ratio']:.2f} on 8 forecasts")


def test_too_few_forecasts_at_places_with_their_own_weights_says_how_many_are_apart(
    settings: Settings,
):
    """Under ACCURACY_MIN_ROWS (100) nothing is judged; the detail counts the forecasts
    reported apart (c's 10 of pm2_5 and 4 of pm10), so the first hours of a network, when
    no place has weights of its own yet, do not read as no forecasts at all."""
    got = accuracy_condition.accuracy(_load(settings), T).to_json()
    assert got["state"] == "ok" and got["value"] is None
    assert got["detail"] == (
        "fewer than 100 verified forecasts of the production version in 72 h at places on "
        "their own weights (14 more at places on the network's, reported apart) (earlier "
        "versions, history only: v0, w0)"
    )
