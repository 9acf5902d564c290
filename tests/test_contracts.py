"""Documents one function writes and another reads, as earlier code wrote them
(tests/fixtures/contracts/, captured by its capture.py), still load with today's models,
and today's models write them back without losing a key or changing a value."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from common.forecasting.versions import ModelMetadata, ProductionPointer, TuningChoice
from common.monitoring.health import PipelineStatus
from tests.contracts import FIXTURES, fixture

PREFIXES = ("", "two_targets__")


def names(suffix: str) -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob(f"*{suffix}.json"))


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Where `new` lost or changed what `old` held (keys `new` adds are not differences)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k, v in old.items():
            if k not in new:
                out.append(f"{path}/{k}: lost")
            else:
                out += differences(v, new[k], f"{path}/{k}")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            d
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    if old == new or _same_time(old, new):
        return []
    return [f"{path}: {old!r} -> {new!r}"]


def _same_time(old: Any, new: Any) -> bool:
    """An offset written +00:00 by older code reads back as the same time in Z."""
    return isinstance(old, str) and isinstance(new, str) and old.replace("+00:00", "Z") == new


def round_trip(model: type[BaseModel], name: str) -> BaseModel:
    raw = fixture(name)
    doc = model.model_validate(raw)
    assert differences(raw, doc.model_dump(mode="json")) == []
    return doc


@pytest.mark.parametrize("name", names("__metadata"))
def test_model_metadata_of_every_stored_version_loads(name: str):
    meta = round_trip(ModelMetadata, name)
    assert isinstance(meta, ModelMetadata)
    assert meta.schema_version == 1  # written before the field existed
    assert meta.gate is not None and meta.gate.verdict == "promote" and meta.gate.reasons
    assert meta.trained_through == meta.data.window[1]
    assert meta.reference and meta.reference_natural and meta.metrics.holdout.by_horizon
    assert meta.feature_spec().target == meta.target
    assert set(meta.model.files) == {"p10", "p50", "p90"}


def test_a_tuned_version_records_its_tuning_and_its_gate_noise():
    tuned = round_trip(ModelMetadata, "models__aircast__20240228T0000Z-f87f769861__metadata")
    assert isinstance(tuned, ModelMetadata) and tuned.tuning is not None
    assert tuned.tuning.params["max_depth"] == 8 and isinstance(
        tuned.tuning.params["max_depth"], int
    )
    assert tuned.gate is not None and tuned.gate.noise is not None
    assert tuned.gate.production_before == "20240227T0000Z-67df52e857"


@pytest.mark.parametrize("name", names("__production"))
def test_production_pointers_load(name: str):
    pointer = round_trip(ProductionPointer, name)
    assert isinstance(pointer, ProductionPointer) and pointer.promoted_at is not None


@pytest.mark.parametrize("name", names("__tuning"))
def test_stored_tuning_loads(name: str):
    tuning = round_trip(TuningChoice, name)
    assert isinstance(tuning, TuningChoice) and tuning.stopped_by == "trials"


def test_a_document_from_newer_code_keeps_what_this_code_does_not_know():
    raw = {**fixture("models__aircast__production"), "reviewed_by": "ops"}
    assert ProductionPointer.model_validate(raw).model_dump(mode="json")["reviewed_by"] == "ops"


@pytest.mark.parametrize("name", names("health_status"))
def test_stored_health_status_loads_and_writes_back_key_for_key(name: str):
    raw = fixture(name)
    status = PipelineStatus.model_validate(raw)
    assert status.schema_version == 1 and status.status == "alert"  # no monitor success yet
    assert differences(raw, status.to_json()) == []
    assert set(status.to_json()) - set(raw) == {"schema_version"}
    for old, new in zip(raw["conditions"], status.to_json()["conditions"], strict=True):
        assert set(new) == set(old), old["name"]  # nothing unset is written as null
    runs = next(c for c in status.conditions if c.name == "runs")
    assert runs.functions is not None and runs.functions["predict"].runs == 1
    assert status.states()["runs"] == "alert"


def test_the_api_documents_the_stored_status_with_the_monitors_model():
    from common.serving import models

    assert models.PipelineStatus is PipelineStatus


ANSWERS = {
    "ingest_answer": "common.ingest.job.IngestAnswer",
    "train_answer": "common.train.job.TrainAnswer",
    "train_answer_tuned": "common.train.job.TrainAnswer",
    "monitor_answer": "common.monitoring.job.MonitorAnswer",
}


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_each_jobs_answer_from_the_earlier_code_is_its_answer_model(prefix: str, name: str):
    import importlib

    module, _, cls = ANSWERS[name].rpartition(".")
    model = getattr(importlib.import_module(module), cls)
    raw = fixture(prefix + name)
    assert (
        differences(raw, model.model_validate(raw).model_dump(mode="json", exclude_unset=True))
        == []
    )


@pytest.mark.parametrize("prefix", PREFIXES)
def test_predict_answers_one_shape_sharded_or_not(prefix: str):
    """The earlier answer repeated the first target's snapshot at the top level and, with
    one shard, collapsed `snapshot` to that shard's outcome: both are gone. What remains of
    a sharded answer is the answer model as it was."""
    from common.predict.answer import PredictAnswer

    sharded = fixture(prefix + "predict_answer_shards")
    rest = {k: v for k, v in sharded.items() if k != "snapshot"}
    answer = PredictAnswer.model_validate(rest)
    assert differences(rest, answer.model_dump(mode="json", exclude_unset=True)) == []
    assert answer.targets is not None and answer.targets["pm2_5"].snapshot is not None
    with pytest.raises(ValueError, match="snapshot"):  # the collapsed one-shard form
        PredictAnswer.model_validate(fixture(prefix + "predict_answer"))
