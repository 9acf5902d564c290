"""Shared fixtures: settings per backend, the emulators, and adapters bound to them."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.core.config import Settings, load_settings
from common.runtime import services
from tests.emulators import BigQueryEndpoints, bigquery_emulator, storage_emulator

PROJECT = "aircast-test"
BUCKET = "aircast-test-artifacts"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_datasets = itertools.count()


# The longest test files, started first so that under `make test` (pytest-xdist, a file
# per worker in collection order) they run side by side and beside the rest of the suite,
# not after it.
LONGEST_FIRST = (
    "tests/ops/test_demo.py",
    "tests/test_e2e_emulators.py",
    "tests/test_e2e.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest-xdist's scheduler keeps one item per node id, so a repeated id would run once
    # under `make test` and the rest would silently not run: refuse to start instead.
    repeated = sorted(n for n, k in collections.Counter(i.nodeid for i in items).items() if k > 1)
    if repeated:
        raise pytest.UsageError(f"test ids collected more than once: {repeated}")
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))


@pytest.fixture(scope="session")
def bq_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEndpoints]:
    with bigquery_emulator(PROJECT, tmp_path_factory.mktemp("bqemulator")) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def gcs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with storage_emulator(BUCKET, tmp_path_factory.mktemp("gcs-emulator")) as url:
        yield url


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return load_settings(backend="local", home=tmp_path / "home")


@pytest.fixture
def gcp_settings(bq_endpoint: BigQueryEndpoints, gcs_endpoint: str, tmp_path: Path) -> Settings:
    """Google adapters on the emulators; a fresh dataset per test keeps tests independent."""
    return load_settings(
        backend="gcp",
        home=tmp_path / "home",
        project=PROJECT,
        bucket=BUCKET,
        dataset=f"t{next(_datasets)}_{tmp_path.name[-8:].replace('-', '_')}",
        bigquery_endpoint=bq_endpoint.rest,
        bigquery_storage_endpoint=bq_endpoint.grpc,
        storage_endpoint=gcs_endpoint,
    )


@pytest.fixture(params=["local", pytest.param("gcp", marks=pytest.mark.emulator)])
def settings(request: pytest.FixtureRequest) -> Settings:
    """Parametrises a test over both backends."""
    return request.getfixturevalue(f"{request.param}_settings")


@pytest.fixture(autouse=True)
def _fresh_services(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Cached settings/adapters never leak between tests."""
    services.reset()
    yield
    services.reset()


def use_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Expose `settings` through the environment, as a deployed function would see them."""
    env = {
        "AIRCAST_BACKEND": settings.backend,
        "AIRCAST_HOME": str(settings.home),
        "AIRCAST_DATASET": settings.dataset,
        "GOOGLE_CLOUD_PROJECT": settings.project,
        "AIRCAST_BUCKET": settings.bucket,
        "AIRCAST_BIGQUERY_ENDPOINT": settings.bigquery_endpoint,
        "AIRCAST_BIGQUERY_STORAGE_ENDPOINT": settings.bigquery_storage_endpoint,
        "STORAGE_EMULATOR_HOST": settings.storage_endpoint,
    }
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    services.reset()


@pytest.fixture
def shared_data() -> Path:
    """The real data beside the project; skips with a clear message where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not found: the real data lives in ../shared/data")
    return SHARED_DATA
