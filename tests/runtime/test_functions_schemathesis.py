"""Schemathesis against the served job functions (ingest, train, predict, monitor): every generated
request gets a documented answer, never a 5xx.

The four functions run as `aircast serve` runs them (functions-framework on loopback)
over one small local home: two synthetic locations, the offline source, a tiny training
budget. Predict has no production model until a train promotes one, so most of its answers
are 409. Each function's document is the one it serves at `/openapi.json` (checked below);
the api is fuzzed the same way in tests/serving/test_api_schemathesis.py.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance

from common.ingest.job import IngestAnswer, IngestRequest, run_ingest
from common.monitoring.job import MonitorAnswer, MonitorRequest, run_monitor
from common.predict.answer import PredictAnswer
from common.predict.job import PredictRequest, run_predict
from common.runtime.handler import describe
from common.scheduling import stack as localstack
from common.train.job import TrainAnswer, TrainRequest, run_train
from tests.train.test_train import TRAIN_ENV

# Every check schemathesis has (server errors, status codes, content types, bodies and
# headers against the document, invalid data refused, unsupported methods a 405 with
# Allow, ...) but positive_data_acceptance: JSON Schema cannot say that as_of must lie
# between 1970 and now (+ the clock skew), so schema-valid bodies naming the year 9999
# are (rightly) a 400.
EXCLUDED = [positive_data_acceptance]
LOCATIONS = """
[[location]]
id = "synth-a"
name = "Synthetic A"
latitude = 40.0
longitude = 116.4
source = "synthetic"

[[location]]
id = "synth-b"
name = "Synthetic B"
latitude = 1.3
longitude = 103.8
source = "synthetic"
"""
DOCUMENTS = {
    "ingest": describe(IngestRequest, run_ingest, IngestAnswer),
    "train": describe(TrainRequest, run_train, TrainAnswer),
    "predict": describe(PredictRequest, run_predict, PredictAnswer),
    "monitor": describe(MonitorRequest, run_monitor, MonitorAnswer),
}
TRIED: dict[str, Counter[int]] = {name: Counter() for name in DOCUMENTS}  # status -> count


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("functions-served")
    (tmp / "locations.toml").write_text(LOCATIONS)
    home: Path = tmp / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRCAST_")}
    env |= TRAIN_ENV | {
        "AIRCAST_BACKEND": "local",
        "AIRCAST_HOME": str(home),
        "AIRCAST_LOCATIONS_FILE": str(tmp / "locations.toml"),
        "AIRCAST_SOURCE": "synthetic",
        "AIRCAST_HTTP_RETRIES": "0",
        # the public APIs are never called: a closed loopback port if a body names one
        "AIRCAST_OPEN_METEO_URL": "http://127.0.0.1:9/v1/forecast",
        "AIRCAST_OPEN_METEO_ARCHIVE_URL": "http://127.0.0.1:9/v1/archive",
        "AIRCAST_OPEN_METEO_AIR_URL": "http://127.0.0.1:9/v1/air-quality",
        "AIRCAST_DATA_GOV_SG_URL": "http://127.0.0.1:9",
        "AIRCAST_AQICN_URL": "http://127.0.0.1:9",
    }
    with localstack.serve(list(DOCUMENTS), port=0, env=env, home=home) as served:
        yield served


def _fuzz(function: str, max_examples: int):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_dict(DOCUMENTS[function])

    @schema.include(method="POST").parametrize()
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def test(case, urls: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
        response = case.call(base_url=urls[function], timeout=60)
        TRIED[function][response.status_code] += 1
        case.validate_response(response, excluded_checks=EXCLUDED)

    return test


# Ingest first: its runs land the observations that train then finds for some as_of.
test_ingest_conforms_to_its_openapi = _fuzz("ingest", 30)
test_train_conforms_to_its_openapi = _fuzz("train", 12)
test_predict_conforms_to_its_openapi = _fuzz("predict", 20)
test_monitor_conforms_to_its_openapi = _fuzz("monitor", 10)


@pytest.mark.parametrize("function", list(DOCUMENTS))
def test_served_document_is_the_one_tested(function: str, urls: dict[str, str]) -> None:
    url = urls[function]
    assert requests.get(f"{url}/openapi.json", timeout=10).json() == DOCUMENTS[function]
    assert requests.get(url, timeout=10).status_code == 405  # a GET never starts a run


def test_every_function_was_fuzzed() -> None:
    """Runs after the fuzzing (file order): requests reached each function."""
    load_all_checks()
    checks = [c for c in CHECKS.get_all_names() if c not in {f.__name__ for f in EXCLUDED}]
    print(f"schemathesis answers per function and status: {TRIED}")
    print(
        f"requests: {sum(sum(n.values()) for n in TRIED.values())}; checks per request: "
        f"{len(checks)} ({', '.join(checks)}); failures: 0 (any would have failed above)"
    )
    assert all(sum(n.values()) > 0 for n in TRIED.values()), TRIED
    assert TRIED["ingest"][200] > 0, TRIED  # valid bodies ran the job
    assert all(n[200] + n[409] > 0 for n in TRIED.values()), TRIED  # past validation
    assert not any(code >= 500 for n in TRIED.values() for code in n), TRIED
