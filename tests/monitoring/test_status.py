"""Health conditions on DuckDB: a healthy pipeline is ok; each injected fault turns its
condition on, and the condition clears once the fault is gone. The pipeline is the real
one (synthetic ingest, train, predict); faults are injected the way they happen."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from common.forecasting.registry import Registry
from common.ingest.job import IngestRequest, run_ingest
from common.monitoring import STATUS_KEY, drift
from common.monitoring import thresholds as th
from common.monitoring.job import MonitorRequest, run_monitor
from common.monitoring.status import CONDITIONS, evaluate
from common.ops.cli import main
from common.predict.job import PredictRequest, run_predict
from common.runtime import services
from common.runtime.services import get_services
from common.train.job import TrainRequest, run_train
from tests.train.test_train import AS_OF, TRAIN_ENV

HOUR = dt.timedelta(hours=1)


def _env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("AIRCAST_HOME", str(home))
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    for k, v in TRAIN_ENV.items():
        monkeypatch.setenv(k, v)
    services.reset()


def ingest(as_of: dt.datetime, start: dt.datetime, **fields: object) -> dict:
    fields.setdefault("source", "synthetic")
    return run_ingest(IngestRequest(as_of=as_of, start=start, end=as_of, **fields), get_services())


def predict(*hours_after: int) -> None:
    for h in hours_after:
        run_predict(PredictRequest(as_of=AS_OF + h * HOUR), get_services())


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """35 days ingested up to AS_OF, a model promoted at AS_OF - 30 h, forecasts every 6 h,
    then the monitor's scheduled run at AS_OF."""
    home = tmp_path_factory.mktemp("health") / "home"
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, home)
        ingest(AS_OF, AS_OF - dt.timedelta(days=35))
        assert run_train(TrainRequest(as_of=AS_OF - 30 * HOUR), get_services())["promoted"]
        predict(-30, -24, -18, -12, -6, 0)
        assert not get_services().store.exists(STATUS_KEY)  # predict leaves it to the monitor
        answer = run_monitor(MonitorRequest(as_of=AS_OF), get_services())
        assert answer["status"] == "success" and answer["health"] == "ok", answer
        assert answer["conditions"] == dict.fromkeys(CONDITIONS, "ok") and answer["stored"]
        services.reset()
    return home


@pytest.fixture
def home(healthy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "home"
    shutil.copytree(healthy, target)
    _env(monkeypatch, target)
    return target


def condition(name: str, as_of: dt.datetime) -> dict:
    """The condition as the monitor stores it (its JSON)."""
    conditions = evaluate(get_services(), as_of).to_json()["conditions"]
    return next(c for c in conditions if c["name"] == name)


def test_a_healthy_pipeline_is_ok_and_the_monitor_stored_the_status(home: Path):
    status = evaluate(get_services(), AS_OF).to_json()
    assert [c["name"] for c in status["conditions"]] == list(CONDITIONS)
    assert {c["name"]: c["state"] for c in status["conditions"]} == dict.fromkeys(CONDITIONS, "ok")
    assert status["status"] == "ok"
    stored = get_services().store.get_json(STATUS_KEY)  # written by the monitor run
    assert stored["as_of"] == "2024-03-01T00:00:00Z"
    assert [c["name"] for c in stored["conditions"]] == list(CONDITIONS)
    accuracy = next(c for c in status["conditions"] if c["name"] == "accuracy")
    assert accuracy["history"] == []  # one version: the production one, judged as served
    version = next(iter(accuracy["versions"].values()))
    assert version["mae"] < version["persistence_mae"] and version["n"] >= 100
    assert set(version["horizons"]) == {"1-3", "4-12", "13-24"}
    # train stored a bounded sample of its inputs beside the version, for the drift check
    registry = Registry(get_services().store, get_services().settings.model_name)
    pointer, _ = registry.production()
    key = registry.key(pointer.version, drift.SAMPLE_FILE)
    sample = drift.read_sample(get_services().store.get(key))
    assert 200 <= len(sample) <= drift.SAMPLE_ROWS
    assert {"pm2_5", "temperature_2m"} <= set(sample.columns)
    drift_now = next(c for c in status["conditions"] if c["name"] == "drift")
    assert drift_now["adversarial_auc"] < 0.65, drift_now


def test_cli_prints_a_table_or_json_and_exits_2_only_on_alert(home: Path):
    ok = CliRunner().invoke(main, ["status", "--as-of", "2024-03-01T00:00:00Z"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("status ok at 2024-03-01T00:00:00Z")
    assert all(f" {name} " in ok.output for name in CONDITIONS)
    stale = CliRunner().invoke(main, ["status", "--as-of", "2024-03-01T08:00:00Z", "--json"])
    assert stale.exit_code == 2
    doc = json.loads(stale.output)
    assert doc["status"] == "alert"
    states = {c["name"]: c["state"] for c in doc["conditions"]}
    assert states["snapshot"] == "alert" and states["runs"] == "alert"


def test_the_monitor_reruns_safely_and_never_stores_an_older_status(home: Path):
    again = run_monitor(MonitorRequest(as_of=AS_OF), get_services())
    assert again["stored"] and again["health"] == "ok"
    older = run_monitor(MonitorRequest(as_of=AS_OF - 6 * HOUR), get_services())
    assert older["status"] == "success" and not older["stored"]
    assert get_services().store.get_json(STATUS_KEY)["as_of"] == "2024-03-01T00:00:00Z"
    runs = get_services().warehouse.query(
        "SELECT status, COUNT(*) AS n FROM run_status WHERE function = 'monitor' GROUP BY status"
    )
    assert dict(zip(runs["status"], runs["n"], strict=True)) == {"success": 3}
    # `aircast monitor` is the same run from a shell: 8 h without predict is an alert
    late = CliRunner().invoke(main, ["monitor", "--as-of", "2024-03-01T08:00:00Z"])
    assert late.exit_code == 0, late.output
    assert (
        "health alert at 2024-03-01T08:00:00Z (" in late.output and "snapshot alert" in late.output
    )
    assert get_services().store.get_json(STATUS_KEY)["status"] == "alert"


def test_a_location_whose_ingest_stops_is_reported_and_clears(home: Path):
    later = AS_OF + 13 * HOUR
    ids = sorted(get_services().warehouse.query("SELECT location_id FROM locations")["location_id"])
    silent, others = ids[0], ids[1:]
    ingest(later, AS_OF, locations=others)
    fresh = condition("freshness", later)
    assert fresh["state"] == "alert"
    assert [loc["location_id"] for loc in fresh["locations"]] == [silent]
    assert fresh["locations"][0]["lag_h"] == 13
    ingest(later, AS_OF, locations=[silent])
    assert condition("freshness", later)["state"] == "ok"


def test_a_source_returning_out_of_range_values_raises_the_rejected_share(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRCAST_CSV_PATH", str(tmp_path))  # the csv source's only root
    services.reset()

    def csv(path: Path, start: dt.datetime, pm2_5: float) -> Path:
        hours = pd.date_range(start, periods=30, freq="h")
        frame = pd.DataFrame({"location_id": "csv-site", "ts": hours.strftime("%Y-%m-%dT%H:%MZ")})
        frame["pm2_5"], frame["latitude"], frame["longitude"] = pm2_5, 1.3, 103.8
        frame.to_csv(path, index=False)
        return path

    bad = csv(tmp_path / "bad.csv", AS_OF - 29 * HOUR, 5000.0)  # above pm2_5's 1500 ceiling
    ingest(AS_OF, AS_OF - 29 * HOUR, source="csv", path=str(bad))
    share = condition("rejected_share", AS_OF)
    assert share["state"] == "alert" and share["value"] == 1.0
    assert share["sources"]["csv"]["rejected"] == 30
    assert share["sources"]["synthetic"]["share"] == 0.0
    assert "csv" in share["detail"]

    later = AS_OF + 25 * HOUR  # the bad run is out of the window; the source is fixed
    good = csv(tmp_path / "good.csv", later - 29 * HOUR, 12.0)
    ingest(later, later - 29 * HOUR, source="csv", path=str(good))
    fixed = condition("rejected_share", later)
    assert fixed["state"] == "ok" and fixed["sources"]["csv"]["rejected"] == 0


def test_train_failing_leaves_no_promotion_and_model_age_alerts_until_a_promotion(home: Path):
    later = AS_OF + 8 * 24 * HOUR
    with pytest.raises(Exception, match="no observations"):  # ingest stopped too: train fails
        run_train(TrainRequest(as_of=later, window_days=7), get_services())
    age = condition("model_age", later)
    assert age["state"] == "alert" and age["value"] > 7
    runs = condition("runs", later)  # no data is a 409: a refused request, not a failure
    assert runs["functions"]["train"]["refused"] == 1
    assert runs["functions"]["train"]["failed"] == 0

    ingest(later, AS_OF)
    answer = run_train(TrainRequest(as_of=later), get_services())
    if not answer["promoted"]:  # the gate saw no evidence of a better model: the operator
        registry = Registry(get_services().store, get_services().settings.model_name)
        registry.promote(answer["version"], registry.production()[1])  # lets the new week in
    assert condition("model_age", later)["state"] == "ok"


def test_an_old_snapshot_is_stale_until_predict_runs_again(home: Path):
    later = AS_OF + 7 * HOUR
    assert condition("snapshot", later)["state"] == "alert"
    ingest(later, AS_OF)
    predict(7)
    snap = condition("snapshot", later)
    assert snap["state"] == "ok" and snap["value"] == 0


def test_what_is_served_is_judged_and_a_retired_version_is_only_history(home: Path):
    """The condition judges the production version's forecasts as served (the model
    combined with the baselines), shows the model's own ratio and the weights beside them,
    and lists an earlier version that lost only as history; served forecasts that go bad
    alert until they leave the window."""
    wh = get_services().warehouse
    svc = get_services()
    version = Registry(svc.store, svc.settings.model_name).production()[0].version
    good = wh.query("SELECT * FROM forecasts WHERE target_ts <= @as_of", {"as_of": AS_OF})
    retired = good.assign(
        model_version="retired", yhat=good["yhat"] * 3 + 40, run_id="predict-retired"
    )
    wh.append("forecasts", retired)
    accuracy = condition("accuracy", AS_OF)
    assert accuracy["state"] == "ok", accuracy["detail"]
    assert accuracy["detail"].startswith(f"pm2_5 {version} as served:")
    assert accuracy["history"] == ["retired"] and accuracy["versions"]["retired"]["ratio"] > 1.1
    (served,) = accuracy["served"]
    assert served["version"] == version and served["ratio"] < 1
    assert set(served["weights"]) == {"1-3", "4-12", "13-24"}
    for shares in served["weights"].values():
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-2)

    broken = good.assign(
        yhat=good["yhat"] * 3 + 40,
        run_id="predict-broken",
        created_at=pd.Timestamp.now(tz="UTC"),  # a newer write of the same forecasts
    )
    wh.append("forecasts", broken)
    accuracy = condition("accuracy", AS_OF)
    assert accuracy["state"] == "alert"
    assert accuracy["detail"].startswith(f"pm2_5 {version} as served:")
    (served,) = accuracy["served"]
    assert served["ratio"] > 1.1 and served["model_ratio"] < 1  # the model itself was fine

    ingest(AS_OF + 80 * HOUR, AS_OF)  # it forecasts on; the bad rows leave the window
    predict(56)  # the synthetic places x 24 verified horizons
    cleared = condition("accuracy", AS_OF + 80 * HOUR)
    assert cleared["state"] == "ok" and "retired" not in cleared["versions"]


def test_a_place_is_reported_apart_until_it_has_weights_of_its_own(home: Path):
    """A location that joins after the others have weights of their own is forecast by the
    global model with the network's weights, and the monitor reports those forecasts apart
    (with every place's from the first run, issued before any place had its own), then,
    once its first forecasts are verified and its own weights serve it, what it forecasts
    from then on joins the rest."""
    wh = get_services().warehouse
    places = wh.query("SELECT * FROM current_locations ORDER BY location_id", {})
    first = places.iloc[0]
    wh.append(
        "locations",
        places.iloc[[0]].assign(
            location_id="newcomer",
            name="Newcomer",
            source="csv",  # another source's place: the synthetic ingest leaves it active
            updated_at=pd.Timestamp.now(tz="UTC"),
        ),
    )
    copy_observations(wh, first["location_id"], AS_OF - 30 * HOUR)
    predict(-6)
    assert len(wh.query("SELECT * FROM forecasts WHERE location_id = 'newcomer'", {})) == 24
    # The first run (AS_OF - 30 h) had no verified forecast to start any place's weights
    # from; the next did. The newcomer has none at its first issue time.
    started = own_weights(wh)
    issued = {at for _, at in started}
    assert AS_OF - 30 * HOUR not in issued and AS_OF - 24 * HOUR in issued
    assert "newcomer" not in {place for place, _ in started}
    network = "(f.issued_at = @first OR (f.location_id = 'newcomer' AND f.issued_at < @joined))"
    accuracy = condition("accuracy", AS_OF)
    (served,) = accuracy["served"]
    assert 0 < verified(wh, AS_OF, "f.location_id = 'newcomer'") <= 6
    assert served["new_places"]["n"] == verified(wh, AS_OF, network)
    assert served["n"] == verified(wh, AS_OF, f"NOT {network}") > 0
    assert "places on the network's weights (none of their own yet)" in accuracy["detail"]
    assert served["place_weights"]["1-3"]["places"] == len(places)  # not the newcomer yet

    # The next hour verifies its first forecasts: its own weights start and serve it.
    later = AS_OF + 6 * HOUR
    ingest(later, AS_OF)
    copy_observations(wh, first["location_id"], AS_OF)
    predict(1)
    assert ("newcomer", AS_OF + HOUR) in own_weights(wh)
    accuracy = condition("accuracy", later)
    (served,) = accuracy["served"]
    joined = "f.location_id = 'newcomer' AND f.issued_at = @joined"
    assert verified(wh, later, joined) > 0
    assert served["new_places"]["n"] == verified(wh, later, network)  # its first, still apart
    assert served["n"] == verified(wh, later, f"NOT {network}")  # its next, with the rest
    assert served["place_weights"]["1-3"]["places"] == len(places) + 1


def copy_observations(wh, source: str, after: dt.datetime) -> None:
    """The newcomer observes what `source` observed after `after` (the synthetic source
    knows its own places only)."""
    obs = wh.query(
        "SELECT * FROM observations WHERE location_id = @id AND ts > @after",
        {"id": source, "after": after},
    )
    wh.append("observations_raw", obs.assign(location_id="newcomer", run_id="ingest-new"))


def own_weights(wh) -> set[tuple[str, dt.datetime]]:
    """(location_id, issue time) at which a place was served weights of its own."""
    rows = wh.query("SELECT DISTINCT location_id, as_of FROM place_combination_weights", {})
    at = pd.to_datetime(rows["as_of"], utc=True)
    return {(str(p), t.to_pydatetime()) for p, t in zip(rows["location_id"], at, strict=True)}


def verified(wh, as_of: dt.datetime, where: str) -> int:
    """Verified forecasts in the accuracy window up to `as_of` with persistence known,
    of the rows `where` keeps (`f`: forecast_accuracy; @first: the first issue time,
    @joined: the hour the newcomer's own weights started)."""
    rows = wh.query(
        "SELECT COUNT(*) AS n FROM forecast_accuracy f JOIN observations o "
        "ON o.location_id = f.location_id AND o.ts = f.issued_at "
        f"WHERE f.target_ts > @a AND f.target_ts <= @b AND ({where}) AND o.pm2_5 IS NOT NULL",
        {
            "a": as_of - th.ACCURACY_WINDOW_HOURS * HOUR,
            "b": as_of,
            "first": AS_OF - 30 * HOUR,
            "joined": AS_OF + HOUR,
        },
    )
    return int(rows["n"].iloc[0])


def test_a_shifted_input_is_drift_and_clears_when_the_source_is_corrected(home: Path):
    wh = get_services().warehouse
    week = wh.query(
        "SELECT * FROM observations WHERE ts > @start AND ts <= @as_of",
        {"start": AS_OF - 7 * 24 * HOUR, "as_of": AS_OF},
    )
    shifted = week.assign(
        temperature_2m=week["temperature_2m"] + 15,
        run_id="ingest-shifted",
        ingested_at=pd.Timestamp.now(tz="UTC"),
    )
    wh.append("observations_raw", shifted)
    shift = condition("drift", AS_OF)
    assert shift["state"] == "alert" and shift["detail"].startswith("PSI")
    assert max(shift["psi"], key=shift["psi"].get) == "temperature_2m"
    # the classifier compares against the sample train stored, which the shift cannot reach
    assert shift["adversarial_auc"] > th.ADVERSARIAL_AUC_WARN, shift

    ingest(AS_OF, AS_OF - 7 * 24 * HOUR)  # the source re-sends its true values
    fixed = condition("drift", AS_OF)
    assert fixed["state"] == "ok" and fixed["psi"]["temperature_2m"] < 0.4
    assert fixed["adversarial_auc"] < 0.65, fixed  # it cannot tell them apart any more


def test_a_condition_that_cannot_be_evaluated_is_an_alert_and_its_traceback_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from common.monitoring import status as status_mod

    def broken(services: object, as_of: dt.datetime) -> None:
        raise OSError("bucket gone")

    monkeypatch.setattr(status_mod, "CHECKS", dict.fromkeys(CONDITIONS, broken))
    with caplog.at_level(logging.WARNING):
        result = evaluate(None, AS_OF)  # type: ignore[arg-type]  # no check reads it
    assert result.status == "alert"
    assert all(c.detail == "could not evaluate: OSError: bucket gone" for c in result.conditions)
    traced = [r for r in caplog.records if r.exc_info]
    assert len(traced) == len(CONDITIONS) and all(r.exc_info[0] is OSError for r in traced)
