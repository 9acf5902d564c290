"""The production model cache: one warm instance, several stores over its life."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.forecasting.model import ForecastModel
from common.forecasting.registry import Registry
from common.forecasting.versions import ModelState
from common.storage.local import LocalStore
from tests.contracts import stored_metadata


def tiny_model() -> ForecastModel:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"level": rng.normal(3, 1, 200), "horizon_h": np.ones(200)})
    y = rng.normal(0, 0.1, 200)
    return ForecastModel(["level", "horizon_h"], horizon=1).fit(
        X[:150], y[:150], X[150:], y[150:], 5
    )


def promote(store: LocalStore, version: str, model: ForecastModel) -> int:
    reg = Registry(store, "aircast")
    meta = stored_metadata().model_copy(
        update={"version": version, "model": ModelState.model_validate(model.state())}
    )
    reg.save(version, model, meta, None)
    return reg.promote(version, 0)


def test_a_new_store_is_never_served_a_dead_stores_model(tmp_path: Path):
    model = tiny_model()
    first, second = tmp_path / "first", tmp_path / "second"
    store = LocalStore(first)
    assert promote(store, "from-first", model) == 1
    assert Registry(store, "aircast").load_production().version == "from-first"
    dead = id(store)
    del store  # freed at once (no cycle): CPython hands its memory out again
    # Allocate stores until one sits where the dead one was: the same id() (kept alive, the
    # others take the allocator's other free slots of that size first).
    spares: list[LocalStore] = []
    while id(store := LocalStore.__new__(LocalStore)) != dead:
        spares.append(store)
        assert len(spares) < 1_000_000, "the dead store's memory was never reused"
    store.__init__(second)
    assert promote(store, "from-second", model) == 1  # a new local store starts again at 1
    assert Registry(store, "aircast").load_production().version == "from-second"
