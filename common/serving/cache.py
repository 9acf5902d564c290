"""The serving snapshot held in memory: one part per predict shard, each re-read only when
its object's generation changes, plus the interval offsets held the same way.

Predict publishes `serving/latest.json` (or one part per shard, see `Parts`); a part is
re-checked at most every `AIRCAST_API_REFRESH_SECONDS`, so a lookup costs a dictionary
access (and, once per snapshot, the JSON encoding of its answer, kept in `Serving`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common.core.errors import Conflict, Unavailable
from common.core.logs import event, get_logger
from common.core.sharding import shard_of
from common.forecasting.snapshot import SNAPSHOT_KEY, Snapshot, snapshot_key
from common.serving.part import Part
from common.storage import ArtifactStore, ObjectMissing, StoreError

if TYPE_CHECKING:
    from common.forecasting.adaptation import Adaptation

log = get_logger("api")


class Budget:
    """The bytes of encoded answers an api instance keeps, over every part and target: a
    bound per part would grow with the shard count (ten parts held 640 MiB of answers at
    100,000 locations). Approximate under threads: the bound is on memory, not billing."""

    def __init__(self, total: int) -> None:
        self.total, self.used = total, 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.total:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.used = max(self.used - n, 0)


@dataclass
class Serving:
    """One loaded snapshot part (held compactly, `Part`) plus the answers already encoded
    from it."""

    part: Part
    generation: int
    budget: Budget
    encoded: dict[tuple[Any, ...], bytes] = field(default_factory=dict)  # by meaning
    encoded_bytes: int = 0
    by_url: dict[tuple[str, bytes], bytes] = field(default_factory=dict)  # (path, query)
    url_bytes: int = 0
    released: bool = False  # replaced or dropped: answers no longer kept

    @property
    def head(self) -> Snapshot:
        """The part's document without its per-location members (`Part.head`)."""
        return self.part.head

    def answer(self, key: tuple[Any, ...], build: Callable[[], bytes]) -> bytes:
        """The encoded answer `key` (by meaning) from this snapshot, built on first use and
        kept while the instance's answers stay within its `Budget`."""
        body = self.encoded.get(key)
        if body is None:
            body = build()
            if not self.released and self.budget.take(len(body)):
                self.encoded[key] = body
                self.encoded_bytes += len(body)
        return body

    def for_url(self, url: tuple[str, bytes], build: Callable[[], bytes]) -> bytes:
        """The answer to `url` (path, query string): the same URL gets the same bytes until
        the snapshot changes, within SnapshotCache's bound on URLs and the `Budget`."""
        body = self.by_url.get(url)
        if body is None:
            body = build()
            if (
                not self.released
                and len(self.by_url) < SnapshotCache.MAX_URLS
                and self.budget.take(len(body))
            ):
                self.by_url[url] = body
                self.url_bytes += len(body)  # counted even when shared with `encoded`
        return body

    def release(self) -> None:
        """Return this part's answers to the budget (the part was replaced or dropped)."""
        self.released = True
        self.budget.give(self.encoded_bytes + self.url_bytes)
        self.encoded_bytes = self.url_bytes = 0


class SnapshotCache:
    """The serving snapshot in memory, re-read only when its generation changes.

    At most one thread checks the store at a time, and only after `refresh_seconds`; the
    others keep answering from the snapshot they have. A failed check keeps the old one.
    """

    # Bounds on the answers cached (a caller choosing odd URLs cannot grow them): the bytes
    # over every part of an instance (`Budget`), the URLs per part.
    MAX_ENCODED_BYTES = 256 * 2**20
    MAX_URLS = 20_000

    def __init__(
        self,
        store: ArtifactStore,
        refresh_seconds: float,
        key: str = SNAPSHOT_KEY,
        budget: Budget | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.budget = budget or Budget(self.MAX_ENCODED_BYTES)
        self.refresh_seconds = refresh_seconds
        self._serving: Serving | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def get(self) -> Serving | None:
        if time.monotonic() - self._checked >= self.refresh_seconds and self._lock.acquire(
            blocking=self._serving is None
        ):
            try:
                if time.monotonic() - self._checked >= self.refresh_seconds:
                    self._refresh()
            finally:
                self._lock.release()
        return self._serving

    def _refresh(self) -> None:
        try:
            generation = self.store.generation(self.key)
            if generation == 0:
                self._replace(None)
                self.last_error = None
            elif self._serving is None or generation != self._serving.generation:
                data, generation = self.store.get_with_generation(self.key)
                part = Part(data)
                del data  # held by `part`
                self._replace(Serving(part, generation, self.budget))
                self.last_error = None
                event(
                    log,
                    "serving snapshot loaded",
                    key=self.key,
                    generation=generation,
                    run_id=part.head.run_id,
                    locations=len(part.index),
                )
        except ObjectMissing:
            self._replace(None)
            self.last_error = None
        except (StoreError, ValueError, OSError) as exc:  # keep serving what we have
            self.last_error = f"{type(exc).__name__}: {exc}"
            event(log, "serving snapshot check failed", logging.ERROR, error=self.last_error)
            if self._serving is None:
                self._checked = time.monotonic()
                raise Unavailable(f"serving snapshot unreadable: {self.last_error}") from exc
        self._checked = time.monotonic()

    def _replace(self, serving: Serving | None) -> None:
        if self._serving is not None:
            self._serving.release()
        self._serving = serving

    def drop(self) -> None:
        """Let go of the held part (its cache was evicted from `Parts`)."""
        self._replace(None)

    def require(self) -> Serving:
        serving = self.get()
        if serving is None and self.last_error:  # present but unreadable: not "absent"
            raise Unavailable(f"serving snapshot unreadable: {self.last_error}")
        if serving is None:
            raise Conflict(
                f"no forecasts yet: the serving snapshot {self.key} is absent (run predict)"
            )
        return serving


class OffsetsCache:
    """The interval offsets and combination weights predict publishes for each target
    (`intervals_key`, `common.forecasting.adaptation.Adaptation`), held like
    the snapshot: re-checked by generation at most every `refresh_seconds` and re-read only
    when it changed, so an online prediction adds no store request of its own. A failed
    check keeps what is held; with nothing held it is a 503."""

    def __init__(self, store: ArtifactStore, refresh_seconds: float) -> None:
        self.store, self.refresh_seconds = store, refresh_seconds
        self._held: dict[
            str, tuple[float, int, Adaptation | None]
        ] = {}  # (checked, generation, it)
        self._lock = threading.Lock()

    def get(self, key: str) -> Adaptation | None:
        """The offsets and combination weights at `key`, or None before predict has
        published any."""
        held = self._held.get(key)
        if held is not None and time.monotonic() - held[0] < self.refresh_seconds:
            return held[2]
        with self._lock:
            held = self._held.get(key)
            try:
                generation = self.store.generation(key)
                if held is not None and generation == held[1]:
                    value = held[2]
                elif generation == 0:
                    value = None
                else:
                    from common.forecasting.adaptation import Adaptation  # numpy: first use

                    data, generation = self.store.get_with_generation(key)
                    value = Adaptation.from_json(json.loads(data))
            except ObjectMissing:
                generation, value = 0, None
            except (StoreError, ValueError, KeyError, OSError) as exc:
                if held is None:
                    raise Unavailable(f"interval offsets unreadable: {exc}") from exc
                event(log, "interval offsets check failed", logging.ERROR, error=str(exc))
                generation, value = held[1], held[2]
            self._held[key] = (time.monotonic(), generation, value)
            return value


class Parts:
    """The snapshot parts the api serves, one per predict shard (AIRCAST_PREDICT_SHARDS).

    A lookup loads only the part of its location (the shard is a hash of the id), so an
    instance never holds or parses the whole network to answer one location; at most
    `held` parts stay parsed (least recently used dropped), which bounds memory at any
    network size. Routes over every location (the list, all forecasts, metrics) visit each
    part in turn. Cloud Run spreads requests over instances regardless of location, so an
    instance that should answer from memory must hold every part: `held` (setting
    AIRCAST_API_PARTS_IN_MEMORY) and the api's memory are sized together (docs/scale.md).
    """

    def __init__(
        self,
        store: ArtifactStore,
        refresh_seconds: float,
        shards: int,
        held: int = 16,
        target: str | None = None,
        default_target: str | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.store, self.refresh_seconds, self.shards = store, refresh_seconds, shards
        self.budget = budget or Budget(SnapshotCache.MAX_ENCODED_BYTES)
        self.held = held
        self.target, self.default_target = target, default_target  # whose snapshot
        self._held: OrderedDict[int, SnapshotCache] = OrderedDict()
        self._shard_by_id: dict[str, int] = {}
        self._lock = threading.Lock()

    def part(self, shard: int) -> SnapshotCache:
        cache = self._held.get(shard)
        if cache is not None and len(self._held) < self.held:
            return cache  # the hot path: no eviction is possible, so no order to keep
        with self._lock:
            cache = self._held.get(shard)
            if cache is None:
                key = snapshot_key(shard, self.shards, self.target, self.default_target)
                cache = self._held[shard] = SnapshotCache(
                    self.store, self.refresh_seconds, key, self.budget
                )
                while len(self._held) > max(self.held, 1):
                    self._held.popitem(last=False)[1].drop()
            else:
                self._held.move_to_end(shard)
            return cache

    MAX_REMEMBERED = 500_000  # ids whose shard is remembered (a caller cannot grow it more)

    def of(self, location_id: str) -> SnapshotCache:
        if self.shards == 1:
            return self.part(0)
        shard = self._shard_by_id.get(location_id)
        if shard is None:
            shard = shard_of(location_id, self.shards)
            if len(self._shard_by_id) < self.MAX_REMEMBERED:
                self._shard_by_id[location_id] = shard
        return self.part(shard)

    def each(self) -> Iterator[tuple[int, Serving | None, str | None]]:
        """(shard, its serving or None, the last refresh error) for every part."""
        for k in range(self.shards):
            cache = self.part(k)
            try:
                serving = cache.get()
            except Unavailable:
                serving = None
            yield k, serving, cache.last_error

    def servings(self) -> list[Serving]:
        """Every part that is served; a 409 when none is (no predict run yet)."""
        each = list(self.each())
        found = [serving for _, serving, _ in each if serving is not None]
        errors = [error for _, _, error in each if error]
        if not found and errors:  # present but unreadable: not "absent"
            raise Unavailable(f"serving snapshot unreadable: {errors[0]}")
        if not found:
            whose = f" of {self.target}" if self.target else ""
            raise Conflict(f"no forecasts yet: the serving snapshot{whose} is absent (run predict)")
        return found
