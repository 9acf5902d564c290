"""One contract for every ArtifactStore: LocalStore always, GCSStore on the emulator."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
from pathlib import Path

import pytest

from common.core.config import Settings
from common.core.errors import CallerError, Contention
from common.core.timeutil import parse_time
from common.storage import ArtifactStore, GenerationMismatch, ObjectMissing, StoreError, open_store
from common.storage.gcs import GCSStore
from common.storage.local import LocalStore


@pytest.fixture
def store(settings: Settings) -> ArtifactStore:
    st = open_store(settings)
    for key in st.list():  # the emulator's bucket is shared by the session
        st.delete(key)
    return st


def test_put_get_list_delete(store: ArtifactStore):
    g1 = store.put("models/m/v1/model.ubj", b"\x00\x01binary")
    store.put("models/m/v2/metadata.json", b"{}")
    store.put("serving/latest.json", b"[]")
    assert store.get("models/m/v1/model.ubj") == b"\x00\x01binary"
    assert store.list("models/") == ["models/m/v1/model.ubj", "models/m/v2/metadata.json"]
    assert store.exists("serving/latest.json") and not store.exists("serving/nope.json")
    g2 = store.put("models/m/v1/model.ubj", b"new")
    assert g2 != g1 and store.get_with_generation("models/m/v1/model.ubj") == (b"new", g2)
    store.delete("models/m/v1/model.ubj")
    store.delete("models/m/v1/model.ubj")  # deleting twice is fine
    with pytest.raises(ObjectMissing):
        store.get("models/m/v1/model.ubj")


def test_json_helpers_and_large_objects(store: ArtifactStore):
    store.put_json("a/b.json", {"version": "v1", "n": [1, 2]})
    assert store.get_json("a/b.json") == {"version": "v1", "n": [1, 2]}
    blob = bytes(range(256)) * 40_000  # 10 MB
    store.put("big/blob.bin", blob)
    assert store.get("big/blob.bin") == blob
    # The first bytes alone (a ranged read on GCS), all of a shorter object, or missing.
    assert store.head("big/blob.bin", 4096) == blob[:4096]
    assert store.head("a/b.json", 4096) == store.get("a/b.json")
    with pytest.raises(ObjectMissing):
        store.head("big/none.bin", 10)


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b", "a/.hidden", "", "a b"])
def test_unsafe_keys_are_refused(store: ArtifactStore, key: str):
    with pytest.raises(StoreError):
        store.put(key, b"x")


def test_compare_and_swap_moves_the_pointer(store: ArtifactStore):
    key = "models/m/production.json"
    g1 = store.put_json_if_generation(key, {"version": "v1"}, 0)
    data, gen = store.get_with_generation(key)
    assert gen == g1 and b"v1" in data
    g2 = store.put_json_if_generation(key, {"version": "v2"}, gen)
    assert g2 != g1 and store.get_json(key) == {"version": "v2"}


def _stamp(data: bytes) -> dt.datetime:
    return parse_time(json.loads(data)["as_of"])


def _doc(as_of: str, body: str = "") -> bytes:
    return json.dumps({"as_of": as_of, "body": body}).encode()


def _built(data: bytes):
    return lambda _current: data


def test_put_if_newer_moves_forward_only_and_replaces_what_it_cannot_read(store: ArtifactStore):
    key = "health/status.json"
    t1, t2 = parse_time("2024-03-01T00:00:00Z"), parse_time("2024-03-01T06:00:00Z")
    first = store.put_if_newer(key, _built(_doc("2024-03-01T06:00:00Z")), t2, _stamp)
    assert first.written and first.generation == store.generation(key) and first.replaced is None
    older = store.put_if_newer(key, _built(_doc("2024-03-01T00:00:00Z")), t1, _stamp)
    assert not older.written and older.newer == t2 and _stamp(store.get(key)) == t2
    rerun = store.put_if_newer(key, _built(_doc("2024-03-01T06:00:00Z", "again")), t2, _stamp)
    assert rerun.written and b"again" in store.get(key)  # an equal stamp: a re-run writes
    for unreadable in (b"{not json", b'{"no": "as_of"}', b'{"as_of": "yesterday"}'):
        store.put(key, unreadable)
        replaced = store.put_if_newer(key, _built(_doc("2024-03-01T00:00:00Z")), t1, _stamp)
        assert replaced.written and replaced.replaced, unreadable  # said why
        assert _stamp(store.get(key)) == t1


def test_put_if_newer_that_keeps_losing_the_race_is_a_retryable_contention(
    local_settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """LocalStore only: the GCS emulator accepts any ifGenerationMatch (its handlers never
    read the parameter), so no write of it can lose; GCSStore's precondition is checked by
    test_gcs_store_sends_the_generation_precondition."""
    store = open_store(local_settings)
    key = "serving/latest.json"
    store.put(key, _doc("2024-03-01T00:00:00Z"))
    real = store.get_with_generation

    def another_writer_wins(k: str) -> tuple[bytes, int]:
        data, gen = real(k)
        store.put(k, _doc("2024-03-01T00:00:00Z"))  # lands between this read and the write
        return data, gen

    monkeypatch.setattr(store, "get_with_generation", another_writer_wins)
    stamp = parse_time("2024-03-01T01:00:00Z")
    with pytest.raises(Contention, match="retry"):
        store.put_if_newer(key, _built(_doc("2024-03-01T01:00:00Z")), stamp, _stamp, attempts=3)
    assert not isinstance(Contention("x"), CallerError)  # not the caller's: a 503


def test_compare_and_swap_loser_gets_a_clear_error(local_settings: Settings):
    # Local only: gcp-storage-emulator ignores ifGenerationMatch (docs/testing.md; checked
    # by hand), so GCS's enforcement is trusted to its documented 412; the next test shows
    # GCSStore sends the precondition.
    store = open_store(local_settings)
    key = "models/m/production.json"
    store.put_json_if_generation(key, {"version": "v1"}, 0)
    with pytest.raises(GenerationMismatch, match="another writer"):
        store.put_json_if_generation(key, {"version": "x"}, 0)
    _, gen = store.get_with_generation(key)
    store.put_json_if_generation(key, {"version": "v2"}, gen)
    with pytest.raises(GenerationMismatch):
        store.put_json_if_generation(key, {"version": "v3"}, gen)  # stale generation
    assert store.get_json(key) == {"version": "v2"}


@pytest.mark.emulator
def test_gcs_store_sends_the_generation_precondition(gcp_settings: Settings):
    store = open_store(gcp_settings)
    assert isinstance(store, GCSStore)
    gen = store.put("models/m/pointer.json", b"{}")
    sent: list[str] = []
    session = store.client._http
    original = session.request

    def record(method: str, url: str, *args, **kwargs):
        sent.append(f"{method} {url}")
        return original(method, url, *args, **kwargs)

    session.request = record
    try:
        store.put_if_generation("models/m/pointer.json", b"{}", gen)
        store.put_if_generation("models/m/new.json", b"{}", 0)
    finally:
        session.request = original
    uploads = [u for u in sent if u.startswith("POST") and "upload" in u]
    assert any(f"ifGenerationMatch={gen}" in u for u in uploads), uploads
    assert any("ifGenerationMatch=0" in u for u in uploads), uploads


def _race(
    root: str, name: str, generation: int, start: mp.synchronize.Barrier, out: mp.Queue
) -> None:
    store = LocalStore(Path(root))
    start.wait()
    try:
        store.put_json_if_generation("models/m/production.json", {"version": name}, generation)
        out.put(("won", name))
    except GenerationMismatch:
        out.put(("lost", name))


@pytest.mark.parametrize("writers", [2, 8])
def test_concurrent_writers_on_the_local_store_give_exactly_one_winner(
    tmp_path: Path, writers: int
):
    store = LocalStore(tmp_path / "artifacts")
    gen = store.put_json_if_generation("models/m/production.json", {"version": "v0"}, 0)
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(writers), ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(str(store.root), f"v{i + 1}", gen, barrier, queue))
        for i in range(writers)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    winners = [name for outcome, name in results if outcome == "won"]
    assert len(winners) == 1
    assert store.get_json("models/m/production.json") == {"version": winners[0]}
