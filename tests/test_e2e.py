"""The main job end to end on the embedded defaults (DuckDB and a folder): see
tests/main_job.py."""

from __future__ import annotations

import pytest

from common.core.config import Settings
from tests.main_job import replay_and_check


@pytest.mark.timeout(1800)  # ~2-3 minutes alone; far longer on a loaded machine
def test_scheduled_functions_over_http_fill_the_warehouse_and_the_api(
    local_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay_and_check(local_settings, monkeypatch)
