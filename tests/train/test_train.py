"""The train job: a version with its metadata and report, the promotion gate (promote,
reject, keep production on failure, lose a compare-and-swap race), and idempotent re-runs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import functions_framework
import pytest

from common.core.config import load_settings
from common.core.errors import Conflict, RunFailed
from common.forecasting.registry import Registry
from common.ingest.job import IngestRequest, run_ingest
from common.runtime import services
from common.runtime.services import get_services
from common.train import candidate as train_candidate
from common.train.job import TrainRequest, run_train

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
TRAIN_ENV = {
    "AIRCAST_TRAIN_MAX_ROWS": "6000",
    "AIRCAST_TRAIN_BACKTEST_FOLDS": "1",
    "AIRCAST_TRAIN_HOLDOUT_DAYS": "3",
    "AIRCAST_TRAIN_THREADS": "1",
    "AIRCAST_TRAIN_WINDOW_DAYS": "60",
}


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """35 days of synthetic observations in a DuckDB home, built once for the module."""
    home = tmp_path_factory.mktemp("train") / "home"
    settings = load_settings(backend="local", home=home)
    from common.runtime.services import Services
    from common.storage import open_store
    from common.warehouse import open_warehouse

    svc = Services(settings, open_warehouse(settings), open_store(settings))
    run_ingest(
        IngestRequest(start=AS_OF - dt.timedelta(days=35), end=AS_OF, source="synthetic"), svc
    )
    return home


@pytest.fixture
def home(backfilled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the backfilled home, exposed through the environment."""
    target = tmp_path / "home"
    shutil.copytree(backfilled, target)
    monkeypatch.setenv("AIRCAST_HOME", str(target))
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    for k, v in TRAIN_ENV.items():
        monkeypatch.setenv(k, v)
    services.reset()
    return target


def registry() -> Registry:
    svc = get_services()
    return Registry(svc.store, svc.settings.model_name)


def test_first_run_writes_a_version_and_promotes_it(home: Path):
    answer = run_train(TrainRequest(as_of=AS_OF), get_services())
    assert answer["status"] == "success" and answer["promoted"] is True
    version = answer["version"]
    reg = registry()
    assert reg.production()[0].version == version
    meta = reg.metadata(version).to_json()
    for key in ("features", "params", "data", "rows", "metrics", "baselines", "gate", "backtest"):
        assert meta[key], key
    assert meta["data"]["window"][1] == "2024-03-01T00:00:00Z"
    assert len(meta["data"]["fingerprint"]) == 64 and meta["code_version"]
    assert meta["rows"]["fit"] <= 6000 and meta["rows"]["holdout"] > 0
    holdout = meta["metrics"]["holdout"]
    assert [r["horizon_h"] for r in holdout["by_horizon"]] == list(range(1, 25))
    assert holdout["model"]["mae"] < holdout["seasonal_naive"]["mae"]
    assert set(holdout["mae_by_location"]) == {f"synth-{n}" for n in _synthetic_ids()}
    assert meta["backtest"] and "mae" in meta["backtest"][0]
    assert meta["gate"]["promote"] is True and meta["gate"]["reasons"]
    assert meta["weather"]["trained_on"] == "none"  # AIRCAST_FUTURE_WEATHER is off
    assert meta["cams_input"]["used"] is False  # no CAMS forecast kept: it stays out
    assert holdout["cams"] == {"n": 0, "mae": None, "model_mae": None}  # absent, not zero
    png = get_services().store.get(reg.key(version, "report.png"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # Training saw nothing after as_of.
    assert meta["data"]["holdout"][1] <= "2024-02-29T00:00:00Z"


def test_a_run_with_forecasts_in_the_warehouse_trains_on_them_as_issued(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    """With past forecasts backfilled (synthetic re-issues its own every 6 h), training
    places for each issue time the newest issued at or before it, and the model card says
    which weather it trained on; the observed weather only when the study setting asks."""
    window = {"start": AS_OF - dt.timedelta(days=35), "end": AS_OF, "as_of": AS_OF}
    request = IngestRequest(source="synthetic", forecasts=True, **window)
    kept = run_ingest(request, get_services())
    assert kept["counts"]["weather_forecasts"] > 0 and kept["counts"]["air_quality_forecasts"] > 0
    again = run_ingest(request, get_services())  # idempotent
    assert again["counts"]["weather_forecasts"] == again["counts"]["air_quality_forecasts"] == 0
    monkeypatch.setenv("AIRCAST_FUTURE_WEATHER", "true")
    services.reset()
    answer = run_train(TrainRequest(as_of=AS_OF), get_services())
    meta = registry().metadata(answer["version"]).to_json()
    assert meta["spec"]["weather"] == "as-issued" and meta["weather"]["trained_on"] == "as-issued"
    assert meta["weather"]["kinds"]["as-issued"] > 0.95, meta["weather"]
    assert "f_temperature_2m" in meta["features"]
    # CAMS accrued since before the window: the candidate reads it, and it is a baseline
    assert meta["cams_input"]["used"] is True and "f_cams" in meta["features"]
    cams = meta["metrics"]["holdout"]["cams"]
    assert cams["n"] > 0 and cams["mae"] > 0 and cams["model_mae"] < cams["mae"]
    assert meta["baselines"]["cams"] == cams

    monkeypatch.setenv("AIRCAST_TRAIN_WEATHER", "observed-oracle")
    services.reset()
    oracle = run_train(TrainRequest(as_of=AS_OF), get_services())
    card = registry().metadata(oracle["version"]).to_json()["weather"]
    assert card["trained_on"] == "observed-oracle" and card["note"].startswith("STUDY SETTING")
    assert card["kinds"]["as-issued"] > 0.95  # its holdout is scored as served: forecasts
    assert oracle["version"] != answer["version"]  # another recipe, another version


def _synthetic_ids() -> list[str]:
    from common.runtime.locations import for_source

    return [loc.location_id.removeprefix("synth-") for loc in for_source("synthetic")]


def test_rerun_finds_the_same_version_and_changes_nothing(home: Path):
    first = run_train(TrainRequest(as_of=AS_OF), get_services())
    gen = registry().production()[1]
    again = run_train(TrainRequest(as_of=AS_OF), get_services())
    assert again["version"] == first["version"] and again["promoted"] is False
    assert again["status"] == "success"
    assert registry().production()[1] == gen
    assert "already in production" in " ".join(again["gate"]["reasons"])


def test_gate_rejects_a_model_that_does_not_beat_seasonal_naive(home: Path, monkeypatch):
    monkeypatch.setenv("AIRCAST_GATE_MARGIN", "0.95")
    services.reset()
    answer = run_train(TrainRequest(as_of=AS_OF), get_services())
    assert answer["status"] == "rejected" and answer["promoted"] is False
    assert "does not beat seasonal naive" in answer["gate"]["reasons"][0]
    assert registry().production() == (None, 0)
    # The rejected version is kept for inspection, with the decision in its metadata.
    assert registry().metadata(answer["version"]).to_json()["gate"]["promote"] is False


def test_gate_keeps_production_when_the_candidate_is_worse(home: Path, monkeypatch):
    good = run_train(TrainRequest(as_of=AS_OF), get_services())
    pointer, gen = registry().production()
    monkeypatch.setenv("AIRCAST_GATE_TOLERANCE", "0")
    services.reset()
    worse = run_train(TrainRequest(as_of=AS_OF, max_rows=1000), get_services())
    assert worse["version"] != good["version"]
    assert worse["gate"]["production_mae"] == pytest.approx(good["metrics"]["mae"])
    assert worse["metrics"]["mae"] > good["metrics"]["mae"]
    assert worse["promoted"] is False and worse["gate"]["verdict"] != "promote"
    # Compared with production on the same rows, with the noise of the paired errors.
    noise = worse["gate"]["noise"]
    assert noise["low"] <= noise["difference"] <= noise["high"] and noise["blocks"] >= 3
    reasons = " ".join(worse["gate"]["reasons"])
    assert "worse than production" in reasons or "no evidence of a difference" in reasons
    assert registry().production() == (pointer, gen)
    assert registry().metadata(worse["version"]).to_json()["gate"] == worse["gate"]


def test_the_gate_records_how_much_older_the_production_models_data_is(home: Path):
    """What the freshness rule decides on (tests/train/test_gate_evidence.py): the days
    between production's training cut-off and the candidate's, in the recorded decision."""
    first = run_train(TrainRequest(as_of=AS_OF), get_services())
    later = run_train(TrainRequest(as_of=AS_OF + dt.timedelta(hours=6)), get_services())
    assert later["gate"]["production_before"] == first["version"]
    assert later["gate"]["production_age_days"] == pytest.approx(0.25, abs=1e-6)
    assert registry().metadata(later["version"]).to_json()["gate"] == later["gate"]


def test_a_failed_run_leaves_production_and_no_partial_version(home: Path, monkeypatch):
    good = run_train(TrainRequest(as_of=AS_OF), get_services())
    before = registry().production()

    def out_of_memory(*args, **kwargs):
        raise MemoryError("simulated: the instance ran out of memory while fitting")

    monkeypatch.setattr(train_candidate, "fit_model", out_of_memory)
    later = AS_OF + dt.timedelta(hours=1)
    client = functions_framework.create_app("train", str(ROOT / "functions/train/main.py"))
    resp = client.test_client().post("/", json={"as_of": later.isoformat()})
    assert resp.status_code == 500 and resp.get_json()["status"] == "failed"
    assert "MemoryError" in resp.get_json()["error"]
    assert registry().production() == before
    versions = {k.split("/")[2] for k in get_services().store.list("models/")}
    assert versions == {good["version"], "production.json"}
    runs = get_services().warehouse.query(
        "SELECT status FROM run_status WHERE function = 'train' ORDER BY started_at"
    )
    assert runs["status"].tolist() == ["success", "failed"]


def _versions() -> set[str]:
    return {k.split("/")[2] for k in get_services().store.list("models/")}


def _train_statuses() -> list[str]:
    runs = get_services().warehouse.query(
        "SELECT status FROM run_status WHERE function = 'train' ORDER BY started_at"
    )
    return runs["status"].tolist()


def test_an_unreadable_production_model_fails_the_run_and_promotes_nothing(home: Path):
    good = run_train(TrainRequest(as_of=AS_OF), get_services())
    store = get_services().store
    store.put(registry().key(good["version"], "model.ubj"), b"not a model")
    before = registry().production()
    with pytest.raises(RunFailed) as info:
        run_train(TrainRequest(as_of=AS_OF, max_rows=1000), get_services())
    assert info.value.result["status"] == "failed" and info.value.result["version"]
    assert registry().production() == before
    assert _versions() == {good["version"], "production.json"}
    assert _train_statuses() == ["success", "failed"]


def test_a_corrupt_production_pointer_fails_the_run(home: Path):
    good = run_train(TrainRequest(as_of=AS_OF), get_services())
    store = get_services().store
    store.put(registry().pointer, b"{not json")
    with pytest.raises(RunFailed):
        run_train(TrainRequest(as_of=AS_OF, max_rows=1000), get_services())
    assert store.get(registry().pointer) == b"{not json"
    assert _versions() == {good["version"], "production.json"}
    assert _train_statuses() == ["success", "failed"]


def test_each_target_is_promoted_on_its_own_and_a_retry_redoes_nothing_done(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    """AIRCAST_TARGETS=pm2_5,pm10: one target failing (its pointer unreadable: ours to fix,
    a 500) fails the run, but the other is trained and promoted by its own compare-and-swap
    and stays so; the retry trains the one that failed and finds the other's version."""
    monkeypatch.setenv("AIRCAST_TARGETS", "pm2_5,pm10")
    services.reset()
    store = get_services().store
    pm10 = Registry(store, "aircast-pm10")
    store.put(registry().pointer, b"{not json")
    with pytest.raises(RunFailed) as info:
        run_train(TrainRequest(as_of=AS_OF), get_services())
    failed = info.value.result
    assert failed["status"] == "failed" and "unreadable" in failed["error"]
    assert failed["targets"]["pm2_5"]["status"] == "failed"
    assert failed["targets"]["pm10"]["status"] == "success"
    assert failed["targets"]["pm10"]["promoted"] is True
    version = failed["targets"]["pm10"]["version"]
    assert pm10.production()[0].version == version
    assert store.get(registry().pointer) == b"{not json"  # untouched

    store.delete(registry().pointer)
    retry = run_train(TrainRequest(as_of=AS_OF), get_services())
    assert retry["status"] == "success", retry
    assert retry["promoted"] is True and retry["target"] == "pm2_5"  # top level: the first
    assert retry["targets"]["pm10"]["version"] == version
    assert retry["targets"]["pm10"]["promoted"] is False  # already production
    assert registry().production()[0].version == retry["version"] != version
    assert retry["counts"]["fit"] == sum(
        registry_of.metadata(a["version"]).to_json()["rows"]["fit"]
        for registry_of, a in ((registry(), retry), (pm10, retry["targets"]["pm10"]))
    )
    assert _train_statuses() == ["failed", "success"]


def test_a_production_version_missing_from_the_store_leaves_the_baselines_to_decide(home: Path):
    get_services().store.put_json(registry().pointer, {"version": "20240101T0000Z-gone"})
    answer = run_train(TrainRequest(as_of=AS_OF), get_services())
    assert answer["status"] == "success" and answer["promoted"] is True
    reasons = answer["gate"]["reasons"]
    assert reasons[-1] == (
        "production 20240101T0000Z-gone is missing from the store; compared to baselines only"
    )
    assert answer["gate"]["production_before"] == "20240101T0000Z-gone"
    assert registry().production()[0].version == answer["version"]


def test_losing_the_race_to_promote_is_a_conflict_and_keeps_the_winner(home: Path, monkeypatch):
    original = Registry.production

    def racing(self: Registry):
        pointer, gen = original(self)
        # Another trainer promotes right after this run read the pointer.
        self.store.put_json(self.pointer, {"version": "other-run"})
        return pointer, gen

    monkeypatch.setattr(Registry, "production", racing)
    with pytest.raises(Conflict, match="another train run promoted first"):
        run_train(TrainRequest(as_of=AS_OF), get_services())
    monkeypatch.setattr(Registry, "production", original)
    assert registry().production()[0].version == "other-run"


def test_bad_requests_and_missing_data_are_4xx(home: Path, tmp_path: Path, monkeypatch):
    client = functions_framework.create_app("train", str(ROOT / "functions/train/main.py"))
    c = client.test_client()
    resp = c.post("/", json={"window_days": 2})
    assert resp.status_code == 400 and resp.get_json()["field"] == "window_days"
    resp = c.post("/", json={"as_of": "yesterday"})
    assert resp.status_code == 400 and resp.get_json()["field"] == "as_of"
    # Before any observation: a 409 that says what to do, not a crash.
    resp = c.post("/", json={"as_of": "2020-01-01T00:00:00Z"})
    assert resp.status_code == 409 and "run ingest first" in resp.get_json()["error"]
    # Too little history for a holdout and a fit: also 409.
    resp = c.post("/", json={"as_of": (AS_OF - dt.timedelta(days=33)).isoformat()})
    assert resp.status_code == 409 and "not enough history" in resp.get_json()["error"]
    assert json.loads(json.dumps(resp.get_json()))


def test_a_window_too_large_for_one_grid_trains_on_a_sampled_selection(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    """With grids bounded to 3,000 cells the window is not read whole: every fit and
    evaluation reads its sampled selection; the version stands and a re-run finds it."""
    from common.forecasting import sampling
    from common.train import observations

    monkeypatch.setattr(sampling, "MAX_CELLS", 3000)
    whole = []
    read = observations.read_observations
    monkeypatch.setattr(
        observations, "read_observations", lambda *a, **k: whole.append(1) or read(*a, **k)
    )
    first = run_train(TrainRequest(as_of=AS_OF), get_services())
    assert first["status"] == "success" and first["promoted"] is True and not whole
    meta = registry().metadata(first["version"]).to_json()
    assert 0 < meta["rows"]["fit"] <= 6000 and meta["rows"]["holdout"] > 0
    assert meta["data"]["observations"] > 0 and meta["reference"]
    holdout = meta["metrics"]["holdout"]
    assert holdout["model"]["mae"] < holdout["seasonal_naive"]["mae"]
    again = run_train(TrainRequest(as_of=AS_OF), get_services())
    assert again["version"] == first["version"] and again["promoted"] is False
    assert again["metrics"] == first["metrics"]  # the same holdout rows, scored again
