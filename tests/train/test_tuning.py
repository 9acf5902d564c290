"""The bounded search: it stops on its budget, never reads a holdout row, and the train
job stores what it chose and fits (and records) the next versions with it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from common.forecasting.features import FeatureSpec
from common.forecasting.training import IssueWindow, TrainingData
from common.runtime.services import get_services
from common.train import tuning
from common.train.job import TrainRequest, run_train
from common.train.tuning import TuneBudget, tune
from tests.forecasting.test_shrinkage import PLACES, smooth_observations
from tests.train.test_train import AS_OF, backfilled, home, registry  # noqa: F401 (fixtures)

BLOCK = dt.timedelta(days=3)


def setup() -> tuple[pd.DataFrame, IssueWindow]:
    obs = smooth_observations(days=36)
    start = pd.Timestamp(obs["ts"].min()).to_pydatetime() + dt.timedelta(days=7)
    return obs, IssueWindow(start, start + dt.timedelta(days=22), 2000)


def test_the_search_stops_on_its_time_budget():
    obs, history = setup()
    budget = TuneBudget(seconds=0.001, max_trials=50, max_rows=1000, threads=1)
    result = tune(TrainingData(obs, FeatureSpec(), PLACES), history, BLOCK, budget)
    # optuna starts no trial once the budget is spent: one trial ran, not fifty.
    assert result["trials"] == 1 and result["stopped_by"] == "time"
    assert set(result["params"]) == {
        "max_depth",
        "learning_rate",
        "min_child_weight",
        "horizon_weight_power",
    }


def test_the_search_never_reads_holdout_rows(monkeypatch: pytest.MonkeyPatch):
    obs, history = setup()
    seen: list[pd.Timestamp] = []
    original = tuning.fit_model

    def spy(data: TrainingData, window: IssueWindow, params=None):
        seen.append(pd.to_datetime(data.obs["ts"], utc=True).max())
        return original(data, window, params)

    monkeypatch.setattr(tuning, "fit_model", spy)
    budget = TuneBudget(seconds=600, max_trials=1, max_rows=1000, threads=1)
    first = tune(TrainingData(obs, FeatureSpec(), PLACES), history, BLOCK, budget)
    assert first["trials"] == 1 and first["stopped_by"] == "trials"
    assert seen and max(seen) <= pd.Timestamp(history.end)
    assert all(b <= history.end.isoformat().replace("+00:00", "Z") for _, b in first["folds"])
    # Every value after the holdout's start replaced by garbage: the same search.
    ts = pd.to_datetime(obs["ts"], utc=True)
    garbage = obs.copy()
    garbage.loc[ts > pd.Timestamp(history.end), "pm2_5"] = np.random.default_rng(5).uniform(
        0, 900, int((ts > pd.Timestamp(history.end)).sum())
    )
    again = tune(TrainingData(garbage, FeatureSpec(), PLACES), history, BLOCK, budget)
    assert (again["params"], again["best_value"]) == (first["params"], first["best_value"])


@pytest.mark.usefixtures("home")
def test_train_tunes_on_request_stores_the_choice_and_the_next_version_uses_it(
    monkeypatch: pytest.MonkeyPatch,
):
    from common.runtime import services

    monkeypatch.setenv("AIRCAST_TUNE_MAX_TRIALS", "1")
    monkeypatch.setenv("AIRCAST_TRAIN_BACKTEST_FOLDS", "0")
    services.reset()
    answer = run_train(TrainRequest(as_of=AS_OF, tune=True), get_services())
    assert answer["status"] in ("success", "rejected"), answer
    store, reg = get_services().store, registry()
    stored = store.get_json(f"{reg.prefix}/tuning.json")
    assert stored["trials"] == 1 and stored["as_of"] == "2024-03-01T00:00:00Z"
    meta = reg.metadata(answer["version"]).to_json()
    assert meta["tuning"]["params"] == stored["params"]
    for k, v in stored["params"].items():
        assert meta["params"][k] == v
    # The next (untuned) run fits with the stored parameters and records them too.
    later = run_train(TrainRequest(as_of=AS_OF + dt.timedelta(hours=1)), get_services())
    assert reg.metadata(later["version"]).to_json()["tuning"]["params"] == stored["params"]
    # A re-run of the tuned request searches nothing again: the same version.
    again = run_train(TrainRequest(as_of=AS_OF, tune=True), get_services())
    assert again["version"] == answer["version"]


@pytest.mark.usefixtures("home")
def test_train_tunes_on_a_sampled_selection_without_reading_the_holdout(
    monkeypatch: pytest.MonkeyPatch,
):
    """A window too large for one grid: the search's folds read sampled selections from a
    source cut at the holdout's start."""
    from common.forecasting import sampling
    from common.runtime import services

    monkeypatch.setattr(sampling, "MAX_CELLS", 3000)
    monkeypatch.setenv("AIRCAST_TUNE_MAX_TRIALS", "1")
    monkeypatch.setenv("AIRCAST_TRAIN_BACKTEST_FOLDS", "0")
    services.reset()
    ends: list[dt.datetime] = []
    original = tuning.fit_model

    def spy(data: TrainingData, window: IssueWindow, params=None):
        assert not isinstance(data.obs, pd.DataFrame)  # the sampled path
        ends.append(data.obs.end)
        return original(data, window, params)

    monkeypatch.setattr(tuning, "fit_model", spy)
    answer = run_train(TrainRequest(as_of=AS_OF, tune=True), get_services())
    assert answer["status"] in ("success", "rejected"), answer
    stored = get_services().store.get_json(f"{registry().prefix}/tuning.json")
    assert stored["trials"] == 1 and ends
    assert max(ends).isoformat().replace("+00:00", "Z") <= stored["data_end"]
