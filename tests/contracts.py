"""The documents earlier code wrote (tests/fixtures/contracts/, see capture.py there), for
tests that need a real one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.forecasting.versions import ModelMetadata

FIXTURES = Path(__file__).parent / "fixtures" / "contracts"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def stored_metadata() -> ModelMetadata:
    """A version's metadata as train wrote it (tuned, gated against a production model)."""
    return ModelMetadata.model_validate(
        fixture("models__aircast__20240228T0000Z-f87f769861__metadata")
    )
