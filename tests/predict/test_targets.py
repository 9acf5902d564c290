"""Several pollutants from one deployment (AIRCAST_TARGETS): one model per target through the
same feature code, trained and gated apart, forecast into `forecasts` by target, one
snapshot per target, and the api answering each with its own index table.

The synthetic source and the UCI Beijing files both carry PM2.5, PM10, NO2 and O3."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import functions_framework
import pytest

from common.core.aqi import US_EPA
from common.core.errors import BadRequest
from common.forecasting.registry import Registry
from common.forecasting.snapshot import Snapshot, snapshot_key
from common.ingest.job import IngestRequest, run_ingest
from common.monitoring.status import evaluate
from common.predict.job import PredictRequest, run_predict
from common.runtime import services
from common.runtime.services import get_services
from common.serving.api import create_app
from common.serving.indices import point_indices
from common.train.job import TrainRequest, run_train
from tests.predict.test_predict import ROOT, H, T, _env, location_ids, online_body, sql


def _per_target(query: str, **params: object) -> dict[str, int]:
    rows = sql(query, **params)
    return {str(r.target): int(r.n) for r in rows.itertuples()}


def _served(target: str) -> Snapshot:
    svc = get_services()
    key = snapshot_key(0, 1, target, svc.settings.default_target)
    return Snapshot.model_validate_json(svc.store.get(key))


def test_a_deployment_adds_targets_keeps_its_model_and_serves_each(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRCAST_TARGETS", "pm2_5,pm10,ozone")
    services.reset()
    svc = get_services()
    production = Registry(svc.store, "aircast").production()[0]
    n = len(location_ids())

    # Only the existing (default) target has a model: the others are skipped with a reason.
    before = run_predict(PredictRequest(as_of=T), svc)
    assert before["status"] == "partial" and before["counts"]["written"] == n * H
    assert "no model in production" in before["targets"]["pm10"]["skipped"]
    assert before["targets"]["pm2_5"]["model_version"] == production.version

    # A request naming a target trains that one alone, under its own name; the default
    # target's production pointer is left as it was. A target not forecast here is a 400.
    with pytest.raises(BadRequest) as bad:
        run_train(TrainRequest(as_of=T - dt.timedelta(days=2), target="nitrogen_dioxide"), svc)
    assert bad.value.field == "target"
    train_fn = functions_framework.create_app("train", str(ROOT / "functions/train/main.py"))
    over_http = train_fn.test_client().post("/", json={"target": ""})
    assert over_http.status_code == 400 and over_http.json["field"] == "target"
    trained = run_train(TrainRequest(as_of=T - dt.timedelta(days=2), target="pm10"), svc)
    assert list(trained["targets"]) == ["pm10"] and trained["promoted"] is True, trained
    assert trained["model_name"] == "aircast-pm10" and trained["target"] == "pm10"
    assert Registry(svc.store, "aircast-pm10").metadata(trained["version"]).target == "pm10"
    assert Registry(svc.store, "aircast").production()[0] == production

    # Predict again: pm10 is forecast with its model; pm2_5's rows are not written twice.
    answer = run_predict(PredictRequest(as_of=T), svc)
    assert answer["status"] == "partial"  # ozone still has no model
    assert answer["targets"]["pm10"]["model_version"] == trained["version"]
    assert answer["targets"]["pm2_5"]["counts"]["written"] == 0
    assert answer["targets"]["pm10"]["counts"]["written"] == n * H
    assert answer["targets"]["pm2_5"]["snapshot"]["0"]["key"] == "serving/latest.json"  # as before
    assert answer["targets"]["pm10"]["snapshot"]["0"]["key"] == "serving/pm10/latest.json"
    written = "SELECT target, COUNT(*) AS n FROM forecasts GROUP BY target"
    assert _per_target(written) == {"pm2_5": n * H, "pm10": n * H}
    latest = "SELECT target, COUNT(*) AS n FROM forecast_aqi WHERE aqi_us_epa IS NOT NULL "
    assert _per_target(latest + "GROUP BY target") == {"pm2_5": n * H, "pm10": n * H}
    pm10 = _served("pm10")
    assert (pm10.target, pm10.model_name, pm10.model_version) == (
        "pm10",
        "aircast-pm10",
        trained["version"],
    )
    assert _served("pm2_5").model_version == production.version

    # The api: each target from its own snapshot, indexed with its own pollutant's table.
    client = create_app(svc.settings, svc.store).test_client()
    loc = location_ids()[0]
    default = client.get(f"/v1/forecasts/{loc}").get_json()
    body = client.get(f"/v1/forecasts/{loc}?target=pm10&observations=true").get_json()
    assert (default["target"], body["target"]) == ("pm2_5", "pm10")
    assert body["model_name"] == "aircast-pm10" and body["model_version"] == trained["version"]
    fc, recent = pm10.forecasts[loc], pm10.observations.get(loc)
    expected = point_indices(US_EPA, "pm10", fc, recent, H)
    assert [p["aqi"] for p in body["points"]] == [e[0] for e in expected]
    assert expected != point_indices(US_EPA, "pm2_5", fc, recent, H)  # pm10's table, not pm2_5's
    assert all(p["category"] == US_EPA.category(p["aqi"]).name for p in body["points"])
    assert body["worst"]["aqi"] == max(p["aqi"] for p in body["points"])
    every = client.get("/v1/forecasts?hours=2&target=pm10").get_json()["forecasts"]
    assert len(every) == n and {f["target"] for f in every} == {"pm10"}
    listed = client.get("/v1/locations?target=pm10").get_json()["locations"]
    assert len(listed) == n
    assert {x["provenance"] for x in listed} == {"model"}  # the synthetic source: simulated
    assert client.get("/v1/metrics?target=pm10").get_json()["model_name"] == "aircast-pm10"
    current = client.get("/v1/models/current?target=pm10").get_json()
    assert current["version"] == trained["version"]
    assert client.get("/health").get_json()["targets"] == ["pm2_5", "pm10", "ozone"]
    assert client.get(f"/v1/forecasts/{loc}?target=ozone").status_code == 409  # no snapshot yet
    # Online: the body's target picks the model; the same forecast as batch for pm10.
    sent = {**online_body(loc)[1], "target": "pm10"}
    online = client.post("/v1/predict", json=sent).get_json()
    assert (online["target"], online["model_name"]) == ("pm10", "aircast-pm10")
    assert [p["yhat"] for p in online["points"]] == pytest.approx(fc.yhat, abs=2e-3)
    assert client.post("/v1/predict", json={**sent, "target": "ozone"}).status_code == 409
    wrong_body = client.post("/v1/predict", json={**sent, "target": "pm25"})
    assert wrong_body.status_code == 400 and wrong_body.get_json()["field"] == "target"
    for wrong in ("nitrogen_dioxide", "pm25", ""):
        r = client.get(f"/v1/forecasts/{loc}?target={wrong}")
        assert r.status_code == 400 and r.get_json()["field"] == "target", wrong
        assert client.get(f"/v1/forecasts?target={wrong}").get_json()["field"] == "target"

    # The monitor watches every target's model and snapshot: ozone has neither.
    conditions = {c["name"]: c for c in evaluate(svc, T).to_json()["conditions"]}
    for name in ("model_age", "snapshot"):
        c = conditions[name]
        assert c["state"] == "alert" and c["target"] == "ozone", c
        assert c["detail"].startswith("ozone: ") and set(c["targets"]) == {"pm2_5", "pm10", "ozone"}
        assert c["targets"]["pm10"]["state"] == "ok", c  # pm10's model and snapshot are fresh
    assert conditions["drift"]["targets"]["pm10"]["detail"].startswith("PSI"), conditions["drift"]


def test_four_pollutants_of_the_beijing_files(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Real data: three Beijing stations, five weeks of March 2016, each of the four
    pollutants the files carry trained, gated, forecast and served with its index."""
    folder = shared_data / "beijing-multisite"
    targets = ["pm2_5", "pm10", "nitrogen_dioxide", "ozone"]
    stations = ["beijing-dongsi", "beijing-guanyuan", "beijing-gucheng"]
    _env(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("AIRCAST_CSV_PATH", str(folder))
    monkeypatch.setenv("AIRCAST_TARGETS", ",".join(targets))
    monkeypatch.setenv("AIRCAST_TRAIN_BACKTEST_FOLDS", "0")  # the gate decides on the holdout
    services.reset()
    svc = get_services()
    start = dt.datetime(2016, 3, 1, tzinfo=dt.UTC)
    train_at = start + dt.timedelta(days=34)
    issue = train_at + dt.timedelta(days=1)
    ingest = IngestRequest(
        start=start, end=issue, source="csv", path=str(folder), locations=stations
    )
    assert run_ingest(ingest, svc)["status"] == "success"

    trained = run_train(TrainRequest(as_of=train_at), svc)
    assert list(trained["targets"]) == targets
    promoted = [t for t, a in trained["targets"].items() if a["promoted"]]
    for target, a in trained["targets"].items():
        assert a["status"] == "success", a
        assert a["model_name"] == ("aircast" if target == "pm2_5" else f"aircast-{target}")
        assert a["metrics"]["mae"] > 0 and a["gate"]["verdict"], a
    assert promoted == targets, trained["targets"]  # each beats its baselines on this data

    answer = run_predict(PredictRequest(as_of=issue), svc)
    for target in promoted:
        assert answer["targets"][target]["counts"]["forecasts"] == len(stations) * H
    rows = "SELECT target, COUNT(*) AS n FROM latest_forecasts WHERE issued_at = @t GROUP BY 1"
    assert _per_target(rows, t=issue) == {t: len(stations) * H for t in promoted}

    client = create_app(svc.settings, svc.store).test_client()
    for target in promoted:
        body = client.get(f"/v1/forecasts/beijing-dongsi?target={target}").get_json()
        snap = _served(target)
        assert body["target"] == snap.target == target and body["unit"] == "µg/m³"
        fc = snap.forecasts["beijing-dongsi"]
        expected = point_indices(US_EPA, target, fc, snap.observations.get("beijing-dongsi"), H)
        assert [(p["aqi"], p["aqi_lower"], p["aqi_upper"]) for p in body["points"]] == expected
        assert any(p["category"] for p in body["points"]), target
