"""The predict tests' shared home: synthetic history and a production model, built once
for the package (training is the slow part), copied per test."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from common.ingest.job import IngestRequest, run_ingest
from common.runtime import services
from common.runtime.services import get_services
from common.train.job import TrainRequest, run_train
from tests.predict.test_predict import T, _env
from tests.train.test_train import AS_OF


@pytest.fixture(scope="package")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic history ingested up to AS_OF and a production model trained at T - 2 days."""
    home = tmp_path_factory.mktemp("predict") / "home"
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, home)
        svc = get_services()
        start = AS_OF - dt.timedelta(days=35)
        run_ingest(IngestRequest(start=start, end=AS_OF, source="synthetic"), svc)
        answer = run_train(TrainRequest(as_of=T - dt.timedelta(days=2)), svc)
        assert answer["promoted"] is True
        services.reset()
    return home


@pytest.fixture
def home(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "home"
    shutil.copytree(trained, target)
    _env(monkeypatch, target)
    return target
