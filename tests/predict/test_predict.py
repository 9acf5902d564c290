"""The predict job on DuckDB: forecasts for every location and horizon, idempotent re-runs,
no leakage from after the issue time, skipped locations, the serving snapshot, the views a
user queries, and the HTTP function (409 before any model is in production)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import functions_framework
import pandas as pd
import pytest

from common.core.config import load_settings
from common.forecasting.snapshot import SNAPSHOT_KEY, Snapshot
from common.ingest.job import IngestRequest, run_ingest
from common.predict.job import PredictRequest, run_predict
from common.runtime import services
from common.runtime.services import Services, get_services
from common.storage import open_store
from common.train.job import TrainRequest, run_train
from common.warehouse import open_warehouse
from tests.train.test_train import AS_OF, TRAIN_ENV

ROOT = Path(__file__).resolve().parents[2]
H = 24
T = AS_OF - dt.timedelta(hours=30)  # an issue time with observed targets after it


def _env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("AIRCAST_HOME", str(home))
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    for k, v in TRAIN_ENV.items():
        monkeypatch.setenv(k, v)
    services.reset()


def sql(query: str, **params: object) -> pd.DataFrame:
    return get_services().warehouse.query(query, params)


def location_ids() -> list[str]:
    return sorted(sql("SELECT location_id FROM locations")["location_id"].unique())


def online_body(loc: str) -> tuple[pd.DataFrame, dict]:
    """`loc`'s stored observations of the 72 h up to T, and the POST /v1/predict body that
    sends them (what batch predict read for it at T)."""
    from common.core.schema import VARIABLES

    obs = sql(
        "SELECT * FROM observations WHERE location_id = @loc AND ts > @start AND ts <= @t",
        loc=loc,
        start=T - dt.timedelta(hours=72),
        t=T,
    )
    body = {
        "location_id": loc,
        "observations": [
            {"ts": r["ts"].isoformat()} | {v: r[v] for v in VARIABLES if pd.notna(r[v])}
            for r in obs.to_dict("records")
        ],
    }
    return obs, body


def test_predict_forecasts_every_location_and_horizon(home: Path):
    answer = run_predict(PredictRequest(as_of=T), get_services())
    ids = location_ids()
    assert answer["status"] == "success", answer
    assert answer["counts"] == {
        "locations": len(ids),
        "forecasts": len(ids) * H,
        "written": len(ids) * H,
        "skipped": 0,
    }
    rows = sql("SELECT * FROM forecasts ORDER BY location_id, horizon_h")
    assert len(rows) == len(ids) * H
    assert set(rows["model_version"]) == {answer["model_version"]}
    assert (rows["issued_at"] == pd.Timestamp(T)).all()
    assert (rows["target_ts"] == rows["issued_at"] + pd.to_timedelta(rows["horizon_h"], "h")).all()
    assert (rows["yhat_lower"] <= rows["yhat"]).all() and (rows["yhat"] <= rows["yhat_upper"]).all()
    assert (rows["yhat_lower"] >= 0).all()
    for timing in ("read_s", "features_s", "model_s", "write_s", "snapshot_s"):
        assert answer["timings"][timing] >= 0

    snap = Snapshot.model_validate_json(get_services().store.get(SNAPSHOT_KEY))
    assert snap.issued_at == T and snap.model_version == answer["model_version"]
    assert sorted(snap.forecasts) == ids and snap.horizon == H
    first = rows[rows["location_id"] == ids[0]]
    assert snap.forecasts[ids[0]].yhat == pytest.approx(first["yhat"].tolist(), abs=1e-3)
    assert len(snap.observations[ids[0]].values) == 48


def test_rerun_gives_the_same_forecasts_and_no_duplicates(home: Path):
    first = run_predict(PredictRequest(as_of=T), get_services())
    before = sql("SELECT * FROM forecasts ORDER BY location_id, horizon_h")
    again = run_predict(PredictRequest(as_of=T), get_services())
    after = sql("SELECT * FROM forecasts ORDER BY location_id, horizon_h")
    assert again["counts"]["written"] == 0 and again["counts"]["forecasts"] == len(before)
    pd.testing.assert_frame_equal(before, after)
    dupes = sql(
        "SELECT location_id, target_ts, COUNT(*) AS n FROM latest_forecasts "
        "GROUP BY location_id, target_ts HAVING COUNT(*) > 1"
    )
    assert dupes.empty
    snap = Snapshot.model_validate_json(get_services().store.get(SNAPSHOT_KEY))
    assert snap.model_version == first["model_version"]


def test_forecasts_at_t_do_not_see_data_after_t(home: Path, tmp_path: Path, monkeypatch):
    run_predict(PredictRequest(as_of=T), get_services())
    full = sql("SELECT * FROM forecasts ORDER BY location_id, horizon_h")

    cut = tmp_path / "cut"
    shutil.copytree(home, cut)
    _env(monkeypatch, cut)
    wh = get_services().warehouse
    ds = get_services().settings.dataset
    with wh.connect() as con:  # the warehouse as it was at T: nothing observed or issued later
        con.execute(f"DELETE FROM {ds}.forecasts")
        con.execute("DELETE FROM main.aircast_deliveries")  # and no delivery recorded yet
        con.execute(f"DELETE FROM {ds}.observations_raw WHERE ts > ?", [T])
        con.execute(f"DELETE FROM {ds}.weather_forecasts WHERE issued_at > ?", [T])
    assert sql("SELECT MAX(ts) AS m FROM observations")["m"][0] == pd.Timestamp(T)
    run_predict(PredictRequest(as_of=T), get_services())
    cut_rows = sql("SELECT * FROM forecasts ORDER BY location_id, horizon_h")
    cols = ["location_id", "target_ts", "horizon_h", "yhat", "yhat_lower", "yhat_upper"]
    pd.testing.assert_frame_equal(full[cols], cut_rows[cols])


def test_views_answer_tomorrow_and_recent_accuracy(home: Path):
    for hours_back in (72, 48, 24):
        run_predict(PredictRequest(as_of=AS_OF - dt.timedelta(hours=hours_back)), get_services())
    final = run_predict(PredictRequest(as_of=AS_OF), get_services())
    loc = location_ids()[0]
    tomorrow = sql(
        "SELECT target_ts, yhat, yhat_lower, yhat_upper, issued_at FROM latest_forecasts "
        "WHERE location_id = @loc AND target_ts > @now AND target_ts <= @day ORDER BY target_ts",
        loc=loc,
        now=AS_OF,
        day=AS_OF + dt.timedelta(hours=24),
    )
    assert len(tomorrow) == 24 and (tomorrow["issued_at"] == pd.Timestamp(AS_OF)).all()

    accuracy = sql(
        "SELECT model_version, horizon_h, COUNT(*) AS n, AVG(abs_error) AS mae, "
        "AVG(CASE WHEN covered THEN 1.0 ELSE 0.0 END) AS coverage FROM forecast_accuracy "
        "WHERE target_ts > @start GROUP BY model_version, horizon_h ORDER BY horizon_h",
        start=AS_OF - dt.timedelta(days=7),
    )
    n_loc = len(location_ids())
    assert accuracy["horizon_h"].tolist() == list(range(1, H + 1))
    assert set(accuracy["model_version"]) == {final["model_version"]}
    # Issued at AS_OF-72h, -48h, -24h: horizon h has an observed target for each of the three
    # runs (all targets <= AS_OF) bar synthetic gaps; the AS_OF run has none yet.
    assert accuracy["n"].max() <= 3 * n_loc and accuracy["n"].min() >= 2 * n_loc
    assert (accuracy["mae"] > 0).all()
    snap = Snapshot.model_validate_json(get_services().store.get(SNAPSHOT_KEY))
    assert snap.issued_at == AS_OF and snap.accuracy is not None
    assert [a.horizon_h for a in snap.accuracy.by_horizon] == list(range(1, H + 1))
    # Persistence on the same hours, for the dashboard's "model vs persistence": the value
    # observed at each issue time, as the whole observations view gives it.
    persistence = sql(
        "SELECT a.horizon_h, AVG(ABS(o.pm2_5 - a.actual)) AS mae FROM forecast_accuracy AS a "
        "LEFT JOIN observations AS o ON o.location_id = a.location_id AND o.ts = a.issued_at "
        "WHERE a.target_ts > @start AND a.target_ts <= @now GROUP BY a.horizon_h "
        "ORDER BY a.horizon_h",
        start=AS_OF - dt.timedelta(days=7),
        now=AS_OF,
    )
    assert [a.persistence_mae for a in snap.accuracy.by_horizon] == pytest.approx(
        persistence["mae"].round(3).tolist(), abs=1e-3
    )
    assert all(a.persistence_mae > 0 for a in snap.accuracy.by_horizon)
    # Hindcast: what was said 24 h ahead for each of the last 48 hours, aligned with the
    # recent observations. Runs here are daily (-48 h, -24 h), so two hours have one: AS_OF
    # and AS_OF - 24 h (the hourly schedule fills every hour).
    past = snap.hindcast[loc]
    assert past.horizon_h == 24 and past.start == snap.observations[loc].start
    assert len(past.values) == len(snap.observations[loc].values) == 48
    said = sql(
        "SELECT target_ts, yhat FROM forecasts WHERE location_id = @loc AND horizon_h = 24 "
        "AND target_ts > @start AND target_ts <= @now ORDER BY target_ts",
        loc=loc,
        start=AS_OF - dt.timedelta(hours=48),
        now=AS_OF,
    )
    assert len(said) == 2
    assert [i for i, v in enumerate(past.values) if v is not None] == [23, 47]
    assert [past.values[23], past.values[47]] == pytest.approx(said["yhat"].tolist(), abs=1e-3)


def test_locations_without_recent_history_are_skipped_with_a_reason(home: Path):
    gone = location_ids()[0]
    wh = get_services().warehouse
    with wh.connect() as con:
        con.execute(
            f"DELETE FROM {get_services().settings.dataset}.observations_raw "
            "WHERE location_id = ? AND ts > ?",
            [gone, T - dt.timedelta(hours=20)],
        )
    answer = run_predict(PredictRequest(as_of=T), get_services())
    assert answer["status"] == "partial"
    assert [s["location_id"] for s in answer["skipped"]] == [gone]
    assert "hours" in answer["skipped"][0]["reason"]
    assert gone not in set(sql("SELECT location_id FROM forecasts")["location_id"])
    snap = Snapshot.model_validate_json(get_services().store.get(SNAPSHOT_KEY))
    assert gone not in snap.forecasts and snap.skipped[0].location_id == gone


def test_an_older_issue_time_never_replaces_a_newer_snapshot(home: Path):
    run_predict(PredictRequest(as_of=T), get_services())
    older = run_predict(PredictRequest(as_of=T - dt.timedelta(hours=6)), get_services())
    assert older["targets"]["pm2_5"]["snapshot"]["0"]["written"] is False
    snap = Snapshot.model_validate_json(get_services().store.get(SNAPSHOT_KEY))
    assert snap.issued_at == T
    # ...but its forecasts are in the warehouse for the record.
    issued = sql("SELECT DISTINCT issued_at FROM forecasts ORDER BY issued_at")["issued_at"]
    assert len(issued) == 2


def _client(monkeypatch: pytest.MonkeyPatch, home: Path):
    _env(monkeypatch, home)
    app = functions_framework.create_app("predict", str(ROOT / "functions/predict/main.py"))
    return app.test_client()


def test_http_function_predicts_and_validates(home: Path, monkeypatch):
    client = _client(monkeypatch, home)
    r = client.post("/", json={"as_of": T.isoformat()})
    assert r.status_code == 200, r.json
    assert r.json["counts"]["locations"] == len(location_ids())
    bad = client.post("/", json={"as_of": "yesterday"})
    assert bad.status_code == 400 and bad.json["field"] == "as_of"
    extra = client.post("/", json={"as_off": T.isoformat()})
    assert extra.status_code == 400 and extra.json["field"] == "as_off"


def test_no_production_model_is_a_409_not_a_crash(tmp_path: Path, monkeypatch):
    home = tmp_path / "empty"
    settings = load_settings(backend="local", home=home)
    wh = open_warehouse(settings)
    wh.ensure_schema()
    svc = Services(settings, wh, open_store(settings))
    run_ingest(
        IngestRequest(start=AS_OF - dt.timedelta(days=4), end=AS_OF, source="synthetic"), svc
    )
    client = _client(monkeypatch, home)
    r = client.post("/", json={"as_of": AS_OF.isoformat()})
    assert r.status_code == 409 and "train" in r.json["error"]
    assert sql("SELECT COUNT(*) AS n FROM forecasts")["n"][0] == 0


def test_online_predict_matches_batch_for_the_same_observations(home: Path):
    """POST /v1/predict runs the same feature and model code as batch predict."""
    from common.serving.api import create_app

    run_predict(PredictRequest(as_of=T), get_services())
    svc = get_services()
    loc = location_ids()[0]
    _, body = online_body(loc)
    client = create_app(svc.settings, svc.store).test_client()
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 200, r.get_json()
    online = r.get_json()
    batch = sql("SELECT * FROM forecasts WHERE location_id = @loc ORDER BY horizon_h", loc=loc)
    assert online["issued_at"].startswith(T.strftime("%Y-%m-%dT%H:%M"))
    assert [p["horizon_h"] for p in online["points"]] == list(range(1, H + 1))
    for col in ("yhat", "yhat_lower", "yhat_upper"):
        assert [p[col] for p in online["points"]] == pytest.approx(batch[col].tolist(), abs=2e-3)
    # The index as the snapshot lookup gives it for the same forecast (same history).
    looked_up = client.get(f"/v1/forecasts/{loc}").get_json()
    for field in ("aqi", "category", "aqi_lower", "aqi_upper"):
        assert [p[field] for p in online["points"]] == [p[field] for p in looked_up["points"]]
    assert all(isinstance(p["aqi"], int) and p["category"] for p in online["points"])
    assert online["worst"]["aqi"] == max(p["aqi"] for p in online["points"])

    short = client.post("/v1/predict", json={**body, "observations": body["observations"][-3:]})
    assert short.status_code == 400 and short.get_json()["field"] == "observations"
    unknown = client.post("/v1/predict", json={**body, "location_id": "nowhere"})
    assert unknown.status_code == 404 and unknown.get_json()["field"] == "location_id"
    fewer = client.post("/v1/predict", json={**body, "hours": 6})
    assert len(fewer.get_json()["points"]) == 6


@pytest.mark.emulator
def test_predict_writes_to_bigquery_and_gcs_on_the_emulators(trained: Path, gcp_settings):
    """The Google write path: forecasts appended through the BigQuery client (bqemulator),
    the snapshot and the model read through the GCS client (gcp-storage-emulator). The model
    is the one trained locally, copied key by key, as `gsutil cp` would."""
    local = open_store(load_settings(backend="local", home=trained))
    wh = open_warehouse(gcp_settings)
    wh.ensure_schema()
    svc = Services(gcp_settings, wh, open_store(gcp_settings))
    for key in svc.store.list(""):  # the emulator's bucket is shared by the session's tests
        svc.store.delete(key)
    for key in local.list("models/"):
        svc.store.put(key, local.get(key))
    run_ingest(IngestRequest(start=T - dt.timedelta(days=4), end=T, source="synthetic"), svc)

    earlier = run_predict(PredictRequest(as_of=T - dt.timedelta(hours=4)), svc)
    first = run_predict(PredictRequest(as_of=T), svc)
    n_loc = len(wh.query("SELECT DISTINCT location_id FROM locations"))
    assert first["status"] == "success" and first["counts"]["written"] == n_loc * H
    again = run_predict(PredictRequest(as_of=T), svc)
    assert again["counts"]["written"] == 0
    # The interval offsets: stepped at T from the earlier run's verified hours, stored once
    # per issue time, the same on the re-run.
    stepped = first["targets"]["pm2_5"]["intervals"]
    assert earlier["targets"]["pm2_5"]["intervals"]["upper"] == [0.0] * H
    assert stepped["verified_through"] == (T - dt.timedelta(hours=2)).isoformat().replace(
        "+00:00", "Z"
    )
    assert {k: v for k, v in again["targets"]["pm2_5"]["intervals"].items() if k != "published"} \
        == {k: v for k, v in stepped.items() if k != "published"}  # fmt: skip
    assert len(wh.query("SELECT * FROM interval_offsets")) == 2 * H
    latest = wh.query(
        "SELECT location_id, COUNT(*) AS n, MIN(horizon_h) AS h1, MAX(horizon_h) AS hmax "
        "FROM latest_forecasts GROUP BY location_id"
    )
    assert len(latest) == n_loc and set(latest["n"]) == {H + 4}  # T - 4 h's first hours too
    assert set(latest["h1"]) == {1} and set(latest["hmax"]) == {H}
    snap = Snapshot.model_validate_json(svc.store.get(SNAPSHOT_KEY))
    assert snap.issued_at == T and len(snap.forecasts) == n_loc


def test_weather_forecasts_issued_by_t_are_used_and_later_ones_are_not(
    home: Path, tmp_path: Path, monkeypatch
):
    """With AIRCAST_FUTURE_WEATHER the model reads the newest weather forecast issued at or
    before t for each target hour: changing one changes the forecast, deleting everything
    issued (or observed) after t changes nothing."""
    monkeypatch.setenv("AIRCAST_FUTURE_WEATHER", "true")
    monkeypatch.setenv("AIRCAST_MODEL_NAME", "weather")
    services.reset()
    # Training reads the forecasts as issued (synthetic re-issues its past ones), never the
    # observed weather at the target hours.
    fit_as_of = T - dt.timedelta(days=2)
    start = fit_as_of - dt.timedelta(days=33)
    past = IngestRequest(
        source="synthetic", forecasts=True, as_of=fit_as_of, start=start, end=fit_as_of
    )
    assert run_ingest(past, get_services())["counts"]["weather_forecasts"] > 0
    trained = run_train(TrainRequest(as_of=fit_as_of), get_services())
    assert trained["promoted"] is True
    meta_features = get_services().store.get_json(
        f"models/weather/{trained['version']}/metadata.json"
    )["features"]
    assert "f_temperature_2m" in meta_features
    # The hourly ingest at t issues the weather forecasts for t+1..t+H (a backfill does not).
    issued = run_ingest(IngestRequest(as_of=T, source="synthetic"), get_services())
    assert issued["counts"]["weather_forecasts"] > 0
    cols = ["location_id", "horizon_h", "yhat", "yhat_lower", "yhat_upper"]

    def forecasts_in(copy: Path, *statements: tuple[str, list]) -> pd.DataFrame:
        target = tmp_path / copy
        shutil.copytree(home, target)
        monkeypatch.setenv("AIRCAST_HOME", str(target))
        services.reset()
        ds = get_services().settings.dataset
        with get_services().warehouse.connect() as con:
            for sql_text, params in statements:
                con.execute(sql_text.format(ds=ds), params)
        assert run_predict(PredictRequest(as_of=T), get_services())["counts"]["locations"] > 0
        return sql("SELECT * FROM forecasts ORDER BY location_id, horizon_h")[cols]

    base = forecasts_in(Path("a"))
    cut = forecasts_in(
        Path("b"),
        ("DELETE FROM {ds}.weather_forecasts WHERE issued_at > ?", [T]),
        ("DELETE FROM {ds}.observations_raw WHERE ts > ?", [T]),
    )
    pd.testing.assert_frame_equal(base, cut)
    warmer = forecasts_in(
        Path("c"),
        (
            "UPDATE {ds}.weather_forecasts SET temperature_2m = temperature_2m + 15, "
            "wind_speed_10m = wind_speed_10m * 3 WHERE issued_at <= ?",
            [T],
        ),
    )
    assert not base["yhat"].equals(warmer["yhat"])


def test_per_horizon_shrinkage_is_applied_identically_online_and_in_batch(home: Path):
    """The version's alphas travel in its metadata and act inside the model's predict:
    where alpha is 0 the model's own median is the last value (what the combination with
    the baselines then weighs), and the two paths serve the same everywhere."""
    from common.forecasting.registry import Registry
    from common.forecasting.versions import ModelState
    from common.serving.api import create_app

    svc = get_services()
    reg = Registry(svc.store, svc.settings.model_name)
    version = reg.production()[0].version
    meta = reg.metadata(version)
    assert len(meta.model.to_json()["shrink"]) == H  # learned by train on its calibration block
    alphas = [0.0 if h % 2 else 0.5 for h in range(1, H + 1)]  # h odd: persistence
    state = ModelState.model_validate({**meta.model.to_json(), "shrink": alphas})
    reg.save_metadata(meta.model_copy(update={"model": state}))
    run_predict(PredictRequest(as_of=T), svc)
    loc = location_ids()[0]
    obs, body = online_body(loc)
    last = float(obs.sort_values("ts").dropna(subset=["pm2_5"])["pm2_5"].iloc[-1])
    batch = sql("SELECT * FROM forecasts WHERE location_id = @loc ORDER BY horizon_h", loc=loc)
    odd = batch[batch["horizon_h"] % 2 == 1]
    assert odd["yhat_model"].tolist() == pytest.approx([last] * len(odd), rel=1e-5)
    r = create_app(svc.settings, svc.store).test_client().post("/v1/predict", json=body)
    assert r.status_code == 200, r.get_json()
    for col in ("yhat", "yhat_lower", "yhat_upper"):
        online = [p[col] for p in r.get_json()["points"]]
        assert online == pytest.approx(batch[col].tolist(), abs=2e-3)


def test_publishing_that_keeps_losing_the_race_answers_503_and_is_recorded_as_retryable(
    home: Path, monkeypatch
):
    """A snapshot part that kept changing under the run (another writer won the compare-and-
    swap three times) is not the caller's fault: the run fails retryably and answers 503,
    which Cloud Scheduler retries; the failed row says why."""
    from common.storage.base import GenerationMismatch
    from common.storage.local import LocalStore

    def always_lose(self, key: str, data: bytes, generation: int, content_type: str = "") -> int:
        raise GenerationMismatch(f"{key}: another writer moved it")

    monkeypatch.setattr(LocalStore, "put_if_generation", always_lose)
    r = _client(monkeypatch, home).post("/", json={"as_of": T.isoformat()})
    assert r.status_code == 503, r.json
    assert r.json["status"] == "failed" and r.json["retryable"] is True
    assert "Contention" in r.json["error"] and "retry" in r.json["error"]
    runs = sql("SELECT status, error FROM run_status WHERE function = 'predict'")
    assert list(runs["status"]) == ["failed"] and "Contention" in runs["error"][0]


def test_a_predict_run_opens_the_warehouse_once(home: Path, monkeypatch: pytest.MonkeyPatch):
    """The run holds one DuckDB connection for its reads, writes and audit rows (opening
    the file per operation was half of a small run's time)."""
    import duckdb

    opened: list[str] = []
    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda path: opened.append(path) or real(path))
    answer = run_predict(PredictRequest(as_of=T), get_services())
    assert answer["status"] == "success" and answer["counts"]["forecasts"] > 0, answer
    assert len(opened) == 1, opened
