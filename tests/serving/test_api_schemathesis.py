"""Schemathesis against the served api: every generated request gets a documented answer.

The api runs exactly as `aircast serve` runs it (functions-framework on loopback) with a
serving snapshot in place; the schema is the api's own `/openapi.json`. Checks: no 5xx,
status codes, content types, bodies and headers conform to the document, schema-valid
requests are accepted and invalid ones refused (every check schemathesis has).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance

from common.serving.openapi import openapi
from tests.api_fixtures import served_api

# The served api's configuration: the default target alone (served_api passes no
# AIRCAST_TARGETS), which is what its document's `target` enum says.
TARGETS = ("pm2_5",)
TRIED: Counter[int] = Counter()  # status -> requests
OPERATIONS_TRIED: Counter[str] = Counter()  # "GET /v1/places" -> requests
HORIZON = 24


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_api(tmp_path_factory.mktemp("api-served") / "home") as url:
        yield url


# The document the served function answers at /openapi.json (checked below). Loaded here,
# not through `schemathesis.pytest.from_fixture`, which does not work with pytest 9.2.
schema = schemathesis.openapi.from_dict(openapi(targets=TARGETS, horizon=HORIZON))
# One test per operation, with the operation in its id: `schema.parametrize()` gives every
# operation the same node id, and pytest-xdist's scheduler keeps one item per node id, so
# under `make test` only one operation was fuzzed.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
@given(data=st.data())
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi(operation: Any, data: st.DataObject, api_url: str) -> None:
    case = data.draw(operation.as_strategy())
    # No `checks`: every check schemathesis has (server errors, status codes, content types,
    # bodies and headers against the document, schema-valid data accepted and invalid data
    # refused, unsupported methods answered 405 with Allow, ...).
    # One left out: positive_data_acceptance, because JSON Schema cannot say an observation's
    # `ts` must lie between 1970 and now + 7 days, so schema-valid bodies with a year-300
    # hour are (rightly) a 400.
    response = case.call_and_validate(
        base_url=api_url, timeout=60, excluded_checks=[positive_data_acceptance]
    )
    TRIED[response.status_code] += 1
    OPERATIONS_TRIED[operation.label] += 1


def test_served_document_is_the_one_tested(api_url: str) -> None:
    assert requests.get(f"{api_url}/openapi.json", timeout=10).json() == openapi(
        targets=TARGETS, horizon=HORIZON
    )


def test_served_lookup_answers(api_url: str) -> None:
    """A plain lookup over real HTTP, so a broken fixture cannot pass vacuously."""
    r = requests.get(f"{api_url}/v1/forecasts/beijing-dongsi?hours=3", timeout=10)
    assert r.status_code == 200
    assert [p["horizon_h"] for p in r.json()["points"]] == [1, 2, 3]


def test_the_api_was_fuzzed() -> None:
    """Runs after the fuzzing (file order): the totals, and requests did reach the api."""
    load_all_checks()
    checks = [c for c in CHECKS.get_all_names() if c != positive_data_acceptance.__name__]
    print(
        f"api answers by status: {dict(TRIED)}; requests: {sum(TRIED.values())}; "
        f"checks per request: {len(checks)}; failures: 0 (any would have failed above)"
    )
    assert sum(TRIED.values()) > 0 and not any(code >= 500 for code in TRIED), TRIED
    assert sorted(OPERATIONS_TRIED) == sorted(op.label for op in OPERATIONS), OPERATIONS_TRIED
