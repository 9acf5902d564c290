"""A snapshot part as the api holds it (`common.serving.part.Part`): any JSON layout of the
document reads back as parsing it whole does (whitespace, non-ASCII ids and names, place
weights), a malformed entry anywhere refuses the part when it is loaded (not on the
lookup that decodes it), and the answers the api keeps are bounded over every part."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from common.core.config import Settings
from common.forecasting.snapshot import SNAPSHOT_KEY, PlaceCombination, Snapshot, snapshot_key
from common.serving.api import create_app
from common.serving.cache import Budget, SnapshotCache
from common.serving.part import Part
from common.storage import open_store
from tests.api_fixtures import make_snapshot

ODD = ("Zürich-Stampfenbach", "北京-东四", 'quote"and\\slash')


def _snapshot() -> Snapshot:
    snap = make_snapshot(locations=("beijing-dongsi", *ODD))
    weights = {"beijing-dongsi": [[0.5, 0.25, 0.25]], ODD[1]: [[0.2, 0.3, 0.5]]}
    offsets = {"beijing-dongsi": [[-0.1, 0.25]], ODD[1]: [[0.0, -0.5]]}
    combination = PlaceCombination(
        experts=["a", "b", "c"], groups=[(1, 24)], weights=weights, offsets=offsets
    )
    return snap.model_copy(update={"combination": combination})


@pytest.mark.parametrize(
    "dump",
    [
        lambda s: s.model_dump_json().encode(),  # compact, UTF-8 as written
        lambda s: json.dumps(s.model_dump(mode="json"), indent=2).encode(),  # \u escapes
        lambda s: (
            " \n"
            + json.dumps(s.model_dump(mode="json"), ensure_ascii=False, separators=(" ,\t", " : "))
            + "\n "
        ).encode(),  # whitespace around every token
    ],
)
def test_a_part_in_any_json_layout_reads_as_the_parsed_snapshot(dump) -> None:
    raw = dump(_snapshot())
    whole, part = Snapshot.model_validate_json(raw), Part(raw)
    assert whole.combination is not None
    assert part.locations() == whole.locations
    assert dict(part.forecasts) == whole.forecasts
    assert dict(part.observations) == whole.observations
    assert dict(part.hindcast) == whole.hindcast
    # The head holds no place's weights or offsets: each is decoded for its lookup.
    emptied = {"weights": {}, "offsets": {}}
    assert part.head.combination == whole.combination.model_copy(update=emptied)
    for loc in whole.locations:
        i = loc.location_id
        assert part.location_of(i) == loc
        own, offsets = whole.combination.weights.get(i), whole.combination.offsets.get(i)
        mine = {"weights": {i: own}, "offsets": {i: offsets}}
        expected = None if own is None else whole.combination.model_copy(update=mine)
        assert part.place_weights(i) == expected
    assert part.place_weights("nowhere") is None


def test_a_part_without_place_weights_has_none() -> None:
    part = Part(make_snapshot().model_dump_json().encode())
    assert part.head.combination is None and part.place_weights("beijing-dongsi") is None


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d["forecasts"]["beijing-tiantan"].update(yhat=["high"]),  # deep in a map
        lambda d: d["locations"][1].update(latitude="north"),
        lambda d: d["hindcast"]["singapore-central"].pop("start"),
        lambda d: d.update(horizon="a day"),  # the head
        lambda d: d.update(  # a place's interval offsets
            combination={
                "experts": ["a"],
                "groups": [[1, 24]],
                "weights": {"x": [[1.0]]},
                "offsets": {"x": [["wide", 0.1]]},
            }
        ),
    ],
)
def test_a_malformed_entry_refuses_the_part_when_loaded(spoil, local_settings: Settings) -> None:
    doc = make_snapshot().model_dump(mode="json")
    spoil(doc)
    raw = json.dumps(doc).encode()
    with pytest.raises(ValidationError):
        Snapshot.model_validate_json(raw)
    with pytest.raises(ValidationError):
        Part(raw)
    store = open_store(local_settings)
    store.put(SNAPSHOT_KEY, raw)
    r = create_app(local_settings, store).test_client().get("/v1/forecasts/beijing-dongsi")
    assert r.status_code == 503 and "unreadable" in r.get_json()["error"]


@pytest.mark.parametrize("raw", [b'{"a": 1} x', b'{"locations": [1,]}', b"[]", b'{"a" 1}'])
def test_not_a_document_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Part(raw)


def test_the_answers_kept_are_bounded_over_every_part(
    local_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget is the instance's, not each part's: ten parts keep what one would."""
    shards, ids = 4, tuple(f"station-{i}" for i in range(40))
    settings = local_settings.model_copy(update={"predict_shards": shards})
    store = open_store(settings)
    snap = make_snapshot(locations=ids, skipped=())
    for k in range(shards):
        store.put(
            snapshot_key(k, shards), snap.model_copy(update={"shard": k}).model_dump_json().encode()
        )
    client = create_app(settings, store).test_client()
    one = len(client.get(f"/v1/forecasts/{ids[0]}").data)
    monkeypatch.setattr(SnapshotCache, "MAX_ENCODED_BYTES", 5 * one)
    client = create_app(settings, store).test_client()
    api = client.application.extensions["aircast_api"]
    assert api.budget.total == 5 * one
    first = {i: client.get(f"/v1/forecasts/{i}").data for i in ids}
    assert api.budget.used <= api.budget.total
    assert {i: client.get(f"/v1/forecasts/{i}").data for i in ids} == first  # same bytes
    held = sum(sv.encoded_bytes + sv.url_bytes for _, sv, _ in api.parts.each() if sv)
    assert held == api.budget.used and held > 0


def test_a_replaced_part_gives_its_answers_back() -> None:
    budget = Budget(100)
    assert budget.take(60) and not budget.take(50)
    budget.give(60)
    assert budget.used == 0 and budget.take(100)
