"""A loaded snapshot part held compactly: the part's JSON bytes as published, an index of
where each location's entries lie in them, and its coordinates, decoded one location at a
time on lookup.

A part parsed whole into pydantic objects costs ~9 KB per location (floats, lists and
models), six times its JSON; an api holding every part of 100,000 locations needed 1.5 GiB.
Held as bytes plus offsets it costs about its JSON. Every entry is still validated when the
part is loaded (one at a time, so the load's peak stays small), so a malformed part is
refused then, as before, and a lookup decodes exactly what validation accepted: answers are
the same bytes as from the parsed `Snapshot`.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from collections.abc import Iterator, Mapping
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter

from common.forecasting.snapshot import (
    Hindcast,
    LocationForecast,
    LocationInfo,
    PlaceCombination,
    RecentObservations,
    Snapshot,
)

M = TypeVar("M", bound=BaseModel)
WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_WEIGHTS = TypeAdapter(list[list[float]])
# The place combination's per-location maps (each place's weights and interval offsets per
# group): indexed like the part's other maps, decoded for the place a lookup asks for.
PLACE_MAPS = ("weights", "offsets")
_LOCATIONS = TypeAdapter(list[LocationInfo])
MAPS: dict[str, type[BaseModel]] = {
    "forecasts": LocationForecast,
    "observations": RecentObservations,
    "hindcast": Hindcast,
}

Span = tuple[str, int, int]  # (key, start, end) of one member's value in the part's bytes


def _ws(text: str, i: int) -> int:
    found = WS.match(text, i)
    assert found is not None  # `*` always matches
    return found.end()


def _key(raw: bytes, text: str, i: int) -> tuple[str, int]:
    """The string at `i` and the index after it (the text is the bytes as latin-1, so
    indices are byte offsets; a non-ASCII key is decoded from its UTF-8 bytes)."""
    if text[i : i + 1] != '"':
        raise ValueError(f"snapshot part: a key expected at byte {i}")
    key, end = scanstring(text, i + 1)
    if not key.isascii():
        key = json.loads(raw[i:end])
    return str(key), end


def _value_end(text: str, i: int) -> int:
    try:
        return int(_DECODER.raw_decode(text, i)[1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"snapshot part: {exc}") from None


def _members(
    raw: bytes, text: str, i: int, walk: dict[str, Any] | None = None
) -> tuple[list[Span], int]:
    """The members of the object at `i` as spans, and the index after it. A member named in
    `walk` is not decoded here: its walker returns where it ends."""
    i = _ws(text, i)
    if text[i : i + 1] != "{":
        raise ValueError(f"snapshot part: an object expected at byte {i}")
    out: list[Span] = []
    i = _ws(text, i + 1)
    if text[i : i + 1] == "}":
        return out, i + 1
    while True:
        key, i = _key(raw, text, i)
        i = _ws(text, i)
        if text[i : i + 1] != ":":
            raise ValueError(f"snapshot part: ':' expected at byte {i}")
        start = _ws(text, i + 1)
        walker = None if walk is None else walk.get(key)
        end = walker(start) if walker is not None else _value_end(text, start)
        out.append((key, start, end))
        i = _ws(text, end)
        c = text[i : i + 1]
        if c == ",":
            i = _ws(text, i + 1)
        elif c == "}":
            return out, i + 1
        else:
            raise ValueError(f"snapshot part: ',' or '}}' expected at byte {i}")


def _elements(text: str, i: int) -> tuple[list[tuple[int, int]], int]:
    """The (start, end) of each element of the array at `i`, and the index after it."""
    if text[i : i + 1] != "[":
        raise ValueError(f"snapshot part: an array expected at byte {i}")
    out: list[tuple[int, int]] = []
    i = _ws(text, i + 1)
    if text[i : i + 1] == "]":
        return out, i + 1
    while True:
        end = _value_end(text, i)
        out.append((i, end))
        i = _ws(text, end)
        c = text[i : i + 1]
        if c == ",":
            i = _ws(text, i + 1)
        elif c == "]":
            return out, i + 1
        else:
            raise ValueError(f"snapshot part: ',' or ']' expected at byte {i}")


class Entries(Mapping[str, M], Generic[M]):
    """One per-location map of a part (`forecasts`, `observations`, `hindcast`), read-only:
    an entry is decoded from the part's bytes when asked for."""

    def __init__(self, part: Part, starts: array[int], ends: array[int], model: type[M]) -> None:
        self._part, self._starts, self._ends, self._model = part, starts, ends, model
        self._len = sum(1 for s in starts if s >= 0)

    def _span(self, location_id: object) -> tuple[int, int] | None:
        k = self._part.index.get(location_id) if isinstance(location_id, str) else None
        if k is None or self._starts[k] < 0:
            return None
        return self._starts[k], self._ends[k]

    def __contains__(self, location_id: object) -> bool:
        return self._span(location_id) is not None

    def __getitem__(self, location_id: str) -> M:
        span = self._span(location_id)
        if span is None:
            raise KeyError(location_id)
        return self._model.model_validate_json(self._part.raw[span[0] : span[1]])

    def __iter__(self) -> Iterator[str]:
        return (key for k, key in enumerate(self._part.keys) if self._starts[k] >= 0)

    def __len__(self) -> int:
        return self._len


class Part:
    """A snapshot part as the api holds it: `head` is the part's `Snapshot` without its
    per-location members (its locations, maps and place weights emptied; everything else,
    the network's accuracy included, as parsed), the rest an index into `raw`."""

    def __init__(self, raw: bytes) -> None:
        text = raw.decode("latin-1")  # one character per byte: indices are byte offsets
        self.raw = raw
        self.keys: list[str] = []  # every location id met, locations first
        self.index: dict[str, int] = {}  # location_id -> its position in `keys`
        spans: dict[str, list[Span]] = {}
        rows: list[tuple[int, int]] = []

        def walk_map(name: str) -> Any:
            def walk(i: int) -> int:
                spans[name], end = _members(raw, text, i)
                return end

            return walk

        def walk_locations(i: int) -> int:
            nonlocal rows
            rows, end = _elements(text, i)
            return end

        def walk_combination(i: int) -> int:
            if text.startswith("null", i):
                return i + 4
            members, end = _members(raw, text, i, {k: walk_map(k) for k in PLACE_MAPS})
            spans["combination"] = members
            return end

        walk = {name: walk_map(name) for name in MAPS}
        walk["locations"] = walk_locations
        walk["combination"] = walk_combination
        top, end = _members(raw, text, 0, walk)
        if _ws(text, end) != len(text):
            raise ValueError("snapshot part: data after the document")

        # Locations, validated one by one; their ids index everything else.
        self.ids: list[str] = []  # per row (the published order)
        self.latitude, self.longitude = array("d"), array("d")
        self._row_starts, self._row_ends = array("q"), array("q")
        last_row: list[tuple[int, int]] = []
        for row, (s, e) in enumerate(rows):
            loc = LocationInfo.model_validate_json(raw[s:e])
            k = self._key_of(loc.location_id)
            last_row.append((k, row))
            self.ids.append(self.keys[k])
            self.latitude.append(math.nan if loc.latitude is None else loc.latitude)
            self.longitude.append(math.nan if loc.longitude is None else loc.longitude)
            self._row_starts.append(s)
            self._row_ends.append(e)
        self.row_of = array("q", [-1]) * len(self.keys)  # key -> its (last) row
        for k, row in last_row:
            self.row_of[k] = row
        del last_row

        checks: dict[str, Any] = {name: model.model_validate_json for name, model in MAPS.items()}
        checks |= dict.fromkeys(PLACE_MAPS, _WEIGHTS.validate_json)
        for name, check in checks.items():  # every entry validated, one at a time
            for key, s, e in spans.get(name, []):
                check(raw[s:e])
                self._key_of(key)
        n = len(self.keys)

        def index_map(name: str) -> tuple[array[int], array[int]]:
            starts, ends = array("q", [-1]) * n, array("q", [-1]) * n
            for key, s, e in spans.get(name, []):  # a repeated key: the last, as a parse keeps
                k = self.index[key]
                starts[k], ends[k] = s, e
            return starts, ends

        self.forecasts = Entries(self, *index_map("forecasts"), LocationForecast)
        self.observations = Entries(self, *index_map("observations"), RecentObservations)
        self.hindcast = Entries(self, *index_map("hindcast"), Hindcast)
        self._places = {name: index_map(name) for name in PLACE_MAPS}

        # The head: the document with its per-location members emptied, parsed as a Snapshot
        # (every field validated as before; the emptied ones were validated above).
        empty = {"locations": b"[]", **{name: b"{}" for name in MAPS}}
        members = []
        for key, s, e in top:
            value = empty.get(key, raw[s:e])
            if key == "combination" and "combination" in spans:
                inner = [
                    json.dumps(k).encode() + b":" + (b"{}" if k in PLACE_MAPS else raw[a:b])
                    for k, a, b in spans["combination"]
                ]
                value = b"{" + b",".join(inner) + b"}"
            members.append(json.dumps(key).encode() + b":" + value)
        self.head = Snapshot.model_validate_json(b"{" + b",".join(members) + b"}")
        self._locations_span = next(((s, e) for key, s, e in top if key == "locations"), None)

    def _key_of(self, location_id: str) -> int:
        k = self.index.get(location_id)
        if k is None:
            k = self.index[location_id] = len(self.keys)
            self.keys.append(location_id)
        return k

    def __len__(self) -> int:
        """How many locations the part lists."""
        return len(self.ids)

    def is_location(self, location_id: str) -> bool:
        k = self.index.get(location_id)
        return k is not None and k < len(self.row_of) and self.row_of[k] >= 0

    def location(self, row: int) -> LocationInfo:
        return LocationInfo.model_validate_json(
            self.raw[self._row_starts[row] : self._row_ends[row]]
        )

    def location_of(self, location_id: str) -> LocationInfo | None:
        if not self.is_location(location_id):
            return None
        return self.location(self.row_of[self.index[location_id]])

    def locations(self) -> list[LocationInfo]:
        """Every listed location, in order, decoded at once (the list routes)."""
        if self._locations_span is None:
            return []
        s, e = self._locations_span
        return _LOCATIONS.validate_json(self.raw[s:e])

    def forecast_rows(self) -> Iterator[int]:
        """The rows of the listed locations that have a forecast, in order."""
        return (row for row, i in enumerate(self.ids) if i in self.forecasts)

    def place_weights(self, location_id: str) -> PlaceCombination | None:
        """The part's place combination with only `location_id`'s weights and interval
        offsets, or None when the place has no weights of its own."""
        combination = self.head.combination
        k = self.index.get(location_id)
        if combination is None or k is None or self._places["weights"][0][k] < 0:
            return None
        own = {}
        for name, (starts, ends) in self._places.items():
            if starts[k] >= 0:
                own[name] = {location_id: _WEIGHTS.validate_json(self.raw[starts[k] : ends[k]])}
        return combination.model_copy(update=own)  # the head's maps are emptied
