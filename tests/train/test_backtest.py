"""The backtest folds: refitted on the rows the candidate already built (no read of the
warehouse), never seeing data after their origin, and run only while the run's deadline
leaves room for them: skipped with the reason in the version's metadata otherwise, and
the gate's decision the same either way."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from common.runtime import services
from common.runtime.services import get_services
from common.train import report
from common.train.job import TrainRequest, run_train
from tests.train.test_train import AS_OF, TRAIN_ENV, backfilled, registry

__all__ = ["backfilled"]  # the module's fixture, shared


def _home(backfilled: Path, to: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Path:
    shutil.copytree(backfilled, to)
    monkeypatch.setenv("AIRCAST_HOME", str(to))
    monkeypatch.setenv("AIRCAST_BACKEND", "local")
    for k, v in {**TRAIN_ENV, "AIRCAST_TRAIN_BACKTEST_FOLDS": "2", **env}.items():
        monkeypatch.setenv(k, v)
    services.reset()
    return to


def test_folds_refit_on_the_candidates_rows_and_see_nothing_after_their_origin(
    backfilled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _home(backfilled, tmp_path / "home", monkeypatch)
    svc = get_services()
    query = svc.warehouse.query
    state = {"in_backtest": False, "queries": 0}
    fitted: list[dict[str, Any]] = []
    tested: list[pd.DataFrame] = []

    def counted(*a: Any, **k: Any) -> Any:
        state["queries"] += state["in_backtest"]
        return query(*a, **k)

    original, fit, score = report.backtest, report.fit_examples, report.score_examples

    def in_backtest(*a: Any, **k: Any) -> Any:
        state["in_backtest"] = True
        try:
            return original(*a, **k)
        finally:
            state["in_backtest"] = False

    def fit_spy(built: Any, *a: Any, **k: Any) -> Any:
        fitted.append({name: rows[2] for name, rows in built.items()})
        return fit(built, *a, **k)

    def score_spy(model: Any, X: Any, y: Any, keys: pd.DataFrame) -> Any:
        tested.append(keys)
        return score(model, X, y, keys)

    monkeypatch.setattr(svc.warehouse, "query", counted)
    monkeypatch.setattr("common.train.candidate.backtest", in_backtest)
    monkeypatch.setattr(report, "fit_examples", fit_spy)
    monkeypatch.setattr(report, "score_examples", score_spy)
    answer = run_train(TrainRequest(as_of=AS_OF), svc)
    meta = registry().metadata(answer["version"]).to_json()

    assert state["queries"] == 0  # the folds read nothing: every row was the candidate's
    folds = meta["backtest"]
    assert len(folds) == 2 and all(f["skipped"] is None for f in folds), folds
    assert answer["counts"]["backtest_folds"] == 2 and answer["counts"]["backtest_skipped"] == 0
    holdout_start = pd.Timestamp(meta["data"]["holdout"][0])
    block = dt.timedelta(days=int(TRAIN_ENV["AIRCAST_TRAIN_HOLDOUT_DAYS"]))
    assert len(fitted) == len(tested) == 2
    for fold, built, test in zip(folds, fitted, tested, strict=True):
        origin = pd.Timestamp(fold["origin"])
        for name, keys in built.items():  # fit, validation, calibration
            assert len(keys), name
            assert (pd.to_datetime(keys["target_ts"], utc=True) <= origin).all(), name
        assert fold["fit_rows"] == len(built["fit"]) <= 6000 // 4
        issued = pd.to_datetime(test["issued_at"], utc=True)
        assert ((issued >= origin) & (issued <= origin + block)).all()
        assert (pd.to_datetime(test["target_ts"], utc=True) <= holdout_start).all()
        assert fold["rows"] == len(test) > 0
        assert fold["mae"] > 0 and fold["ratio_persistence"] > 0


def test_folds_the_deadline_leaves_no_room_for_are_skipped_and_the_gate_decides_the_same(
    backfilled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _home(backfilled, tmp_path / "full", monkeypatch)
    full = run_train(TrainRequest(as_of=AS_OF), get_services())
    full_meta = registry().metadata(full["version"]).to_json()

    # A 1 s timeout: the deadline has passed before the first fold could start.
    _home(backfilled, tmp_path / "short", monkeypatch, AIRCAST_RUN_TIMEOUT_SECONDS="1")
    short = run_train(TrainRequest(as_of=AS_OF), get_services())
    meta = registry().metadata(short["version"]).to_json()

    assert short["version"] == full["version"]  # the folds are not part of the recipe
    assert [f["origin"] for f in meta["backtest"]] == [f["origin"] for f in full_meta["backtest"]]
    for fold in meta["backtest"]:
        assert fold["skipped"].startswith("not run: ") and "deadline" in fold["skipped"]
        assert fold["mae"] is None
    assert short["counts"]["backtest_folds"] == 0 and short["counts"]["backtest_skipped"] == 2
    assert short["gate"] == full["gate"] and short["metrics"] == full["metrics"]
    assert meta["metrics"] == full_meta["metrics"] and meta["rows"] == full_meta["rows"]
    # The re-run finds the version as written: its folds stay as they were recorded.
    again = run_train(TrainRequest(as_of=AS_OF), get_services())
    assert again["version"] == short["version"] and again["counts"]["backtest_skipped"] == 2


def test_production_is_scored_on_the_candidates_holdout_rows_without_reading_them_again(
    backfilled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """With production of the same recipe, its score comes from the rows the candidate's
    holdout already built: no query, and the very score reading them again gives."""
    from dataclasses import replace

    from common.train import job

    _home(backfilled, tmp_path / "home", monkeypatch)
    svc = get_services()
    first = run_train(TrainRequest(as_of=AS_OF), svc)
    query = svc.warehouse.query
    state = {"inside": False, "queries": 0}
    scores: list[tuple[Any, Any]] = []

    def counted(*a: Any, **k: Any) -> Any:
        state["queries"] += state["inside"]
        return query(*a, **k)

    original = job.score_production

    def spy(registry_: Any, version: str, data: Any, plan: Any, cand: Any, settings: Any) -> Any:
        assert cand.holdout_rows is not None
        state["inside"] = True
        reused = original(registry_, version, data, plan, cand, settings)
        state["inside"] = False
        read = original(registry_, version, data, plan, replace(cand, holdout_rows=None), settings)
        scores.append((reused, read))
        return reused

    monkeypatch.setattr(svc.warehouse, "query", counted)
    monkeypatch.setattr(job, "score_production", spy)
    later = run_train(TrainRequest(as_of=AS_OF + dt.timedelta(hours=6)), svc)
    assert later["gate"]["production_before"] == first["version"]
    assert state["queries"] == 0 and len(scores) == 1
    reused, read = scores[0]
    assert reused == read and reused.mae is not None and reused.noise is not None
