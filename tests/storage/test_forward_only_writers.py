"""The two writers of forward-only documents, the health status and predict's snapshot
parts, share the store's one `put_if_newer` loop: the same answer to a newer document, to
an unreadable or future-dated one, and to a race lost every time (a retryable Contention),
on the folder store and on the GCS adapter against the emulator."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, cast

import pytest

from common.core.config import Settings
from common.core.errors import Contention, Retryable
from common.core.timeutil import iso, parse_time
from common.monitoring import STATUS_KEY
from common.monitoring import status as health
from common.monitoring.health import PipelineStatus
from common.predict.publish import publish as publish_snapshot
from common.predict.snapshot import RawJSON
from common.runtime.services import Services
from common.storage import ArtifactStore, GenerationMismatch, open_store

T = parse_time("2024-03-01T06:00:00Z")
PART = "serving/pm2_5/part-0.json"


@pytest.fixture
def services(settings: Settings) -> Services:
    store = open_store(settings)
    for key in store.list():  # the emulator's bucket is shared by the session
        store.delete(key)
    return Services(settings, cast(Any, None), store)  # publishing never queries


def _status(as_of: dt.datetime) -> PipelineStatus:
    return PipelineStatus(status="ok", as_of=as_of, conditions=[])


def _forecast(issued: dt.datetime, hours: int = 24) -> dict[str, Any]:
    return {"issued_at": iso(issued), "yhat": [1.0] * hours}


def _snapshot(
    issued: dt.datetime, forecasts: dict[str, Any], skipped: tuple[str, ...] = ()
) -> dict:
    return {
        "issued_at": iso(issued),
        "forecasts": RawJSON(json.dumps(forecasts)),
        "observations": RawJSON("{}"),
        "skipped": [{"location_id": s, "reason": "no observations"} for s in skipped],
    }


def _write_status(services: Services, as_of: dt.datetime) -> bool:
    return health.publish(services, _status(as_of))


def _write_part(services: Services, as_of: dt.datetime) -> bool:
    answer = publish_snapshot(services, _snapshot(as_of, {"a": _forecast(as_of)}), PART)
    return bool(answer["written"])


WRITERS: dict[str, tuple[str, Callable[[Services, dt.datetime], bool], str]] = {
    "status": (STATUS_KEY, _write_status, "as_of"),
    "snapshot": (PART, _write_part, "issued_at"),
}


def _stamp(store: ArtifactStore, key: str, field: str) -> dt.datetime:
    return parse_time(json.loads(store.get(key))[field])


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_writer_moves_forward_only(services: Services, writer: str):
    key, write, field = WRITERS[writer]
    assert write(services, T)
    assert not write(services, T - dt.timedelta(hours=6))  # a backfill hides nothing newer
    assert _stamp(services.store, key, field) == T
    assert write(services, T)  # an equal stamp is a re-run: written
    assert write(services, T + dt.timedelta(hours=1))
    assert _stamp(services.store, key, field) == T + dt.timedelta(hours=1)


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("stored", ["not json", "no stamp", "dated after now"])
def test_a_writer_replaces_what_it_cannot_read_and_says_why(
    services: Services, writer: str, stored: str, caplog: pytest.LogCaptureFixture
):
    key, write, field = WRITERS[writer]
    future = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=6)
    services.store.put(
        key,
        {
            "not json": b"{not json",
            "no stamp": b'{"something": "else"}',
            "dated after now": json.dumps({field: iso(future)}).encode(),
        }[stored],
    )
    assert write(services, T)
    assert _stamp(services.store, key, field) == T
    assert any("replaced an unreadable" in r.getMessage() for r in caplog.records), stored


def test_the_snapshot_answer_says_what_it_replaced(services: Services):
    future = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=6)
    services.store.put(PART, json.dumps({"issued_at": iso(future)}).encode())
    answer = publish_snapshot(services, _snapshot(T, {"a": _forecast(T)}), PART)
    assert answer["written"] and iso(future) in answer["replaced"], answer


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_writer_that_keeps_losing_the_race_raises_a_retryable_contention(
    services: Services, writer: str, monkeypatch: pytest.MonkeyPatch
):
    """Another writer moves the generation before every write: the GCS emulator never
    enforces ifGenerationMatch, so the lost write is the adapter's answer to a 412."""
    _, write, _ = WRITERS[writer]
    tries: list[int] = []

    def lose(k: str, data: bytes, generation: int, content_type: str = "") -> int:
        tries.append(generation)
        raise GenerationMismatch(f"{k}: another writer moved it")

    monkeypatch.setattr(services.store, "put_if_generation", lose)
    with pytest.raises(Contention, match="retry") as raised:
        write(services, T)
    assert isinstance(raised.value, Retryable) and len(tries) == 3


def test_the_snapshot_is_built_again_on_the_document_that_won_the_race(
    services: Services, monkeypatch: pytest.MonkeyPatch
):
    """A location this run skipped keeps its last forecast: the one served by whichever
    run won the race in between, not the one read before the lost write."""
    store = services.store
    store.put(PART, _body(T - dt.timedelta(hours=2), {"b": _forecast(T - dt.timedelta(hours=2))}))
    real = store.put_if_generation
    lost: list[int] = []

    def lose_once(k: str, data: bytes, generation: int, content_type: str = "") -> int:
        if not lost:
            lost.append(generation)  # another run publishes first, with a newer "b"
            store.put(k, _body(T - dt.timedelta(hours=1), {"b": _forecast(T, 30)}))
            raise GenerationMismatch(f"{k}: another writer moved it")
        return real(k, data, store.generation(k), content_type)

    monkeypatch.setattr(store, "put_if_generation", lose_once)
    answer = publish_snapshot(services, _snapshot(T, {"a": _forecast(T)}, ("b",)), PART)
    assert answer["written"] and answer["stale"] == 1, answer
    served = json.loads(store.get(PART))
    assert len(served["forecasts"]["b"]["yhat"]) == 30  # carried from the winner's document
    assert served["stale"] == [{"location_id": "b", "issued_at": iso(T)}]


def _body(issued: dt.datetime, forecasts: dict[str, Any]) -> bytes:
    return json.dumps({"issued_at": iso(issued), "forecasts": forecasts}).encode()


def test_an_empty_snapshot_is_declined_and_the_served_one_kept(services: Services):
    store = services.store
    store.put(PART, _body(T - dt.timedelta(hours=1), {"a": _forecast(T - dt.timedelta(hours=1))}))
    later = T + dt.timedelta(days=2)  # "a" skipped, and its forecast covers no future hour
    answer = publish_snapshot(services, _snapshot(later, {}, ("a",)), PART)
    assert answer["written"] is False and "served snapshot is kept" in answer["reason"]
    assert _stamp(store, PART, "issued_at") == T - dt.timedelta(hours=1)
