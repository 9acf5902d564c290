"""The ArtifactStore port: bytes by key, plus compare-and-swap for pointers.

Every object carries a generation (GCS's term): a number that changes on each write. A
conditional put succeeds only if the object's generation is still the one the writer read
(0 = "must not exist yet"), so two writers racing on `production.json` never both win.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.core.errors import AircastError, Contention

KEY = re.compile(r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$")

__all__ = [
    "KEY",
    "ArtifactStore",
    "GenerationMismatch",
    "ObjectMissing",
    "Put",
    "StoreError",
    "check_key",
]

# What reading a stored document's stamp may raise when the document is unreadable:
# not JSON, not UTF-8, a missing or malformed field (json and parse_time raise ValueError).
UNREADABLE = (ValueError, KeyError, TypeError, IndexError)


@dataclass(frozen=True)
class Put:
    """What `put_if_newer` did: written (with the new generation), or not because the
    document stored is stamped later (`newer`) or because the build had nothing to write
    (`declined`); `replaced` says why a document that was there could not be read (it was
    overwritten, or handed to the build as absent)."""

    written: bool
    generation: int = 0
    newer: dt.datetime | None = None
    declined: bool = False
    replaced: str | None = None


class StoreError(AircastError):
    """An artifact store operation failed: an unusable key, a document that cannot be read,
    or the store itself."""


class ObjectMissing(StoreError):
    """No object at the key. Whether that is the caller's problem (an unknown thing: 404,
    no model yet: 409) or ours (a file a version relies on) is for the reader to say."""


class GenerationMismatch(StoreError):
    """A conditional put lost: the object's generation moved since the writer read it."""


def check_key(key: str) -> str:
    if not isinstance(key, str) or not KEY.match(key):
        raise StoreError(f"invalid artifact key: {key!r}")
    if any(part.startswith(".") for part in key.split("/")):  # also rules out . and ..
        raise StoreError(f"artifact key parts may not start with '.': {key!r}")
    return key


class ArtifactStore(ABC):
    """Port for model files, pointers and serving snapshots."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> int:
        """Write unconditionally; return the new generation."""

    @abstractmethod
    def put_if_generation(
        self, key: str, data: bytes, generation: int, content_type: str = "application/json"
    ) -> int:
        """Write only if the current generation is `generation` (0: absent), else raise
        GenerationMismatch. Return the new generation."""

    @abstractmethod
    def get_with_generation(self, key: str) -> tuple[bytes, int]:
        """Return the bytes and their generation; raise ObjectMissing if absent."""

    @abstractmethod
    def generation(self, key: str) -> int:
        """Current generation, 0 if absent (a cheap metadata call, for change checks)."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if present."""

    def get(self, key: str) -> bytes:
        return self.get_with_generation(key)[0]

    def head(self, key: str, size: int) -> bytes:
        """The object's first `size` bytes (all of it when shorter); ObjectMissing if absent.
        A ranged read where the store has one, so a large object is not downloaded whole."""
        return self.get(key)[:size]

    def exists(self, key: str) -> bool:
        return self.generation(key) != 0

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))

    def put_json(self, key: str, value: Any) -> int:
        return self.put(key, _dumps(value), "application/json")

    def put_json_if_generation(self, key: str, value: Any, generation: int) -> int:
        return self.put_if_generation(key, _dumps(value), generation, "application/json")

    def put_if_newer(
        self,
        key: str,
        build: Callable[[bytes | None], bytes | None],
        stamp: dt.datetime,
        stamp_of: Callable[[bytes], dt.datetime],
        content_type: str = "application/json",
        attempts: int = 3,
    ) -> Put:
        """Write the document `build` makes (stamped `stamp`) at `key` unless the document
        there is stamped later (`stamp_of` reads a stored document's stamp): documents only
        move forward, so a backfill never hides a newer one. An equal stamp is written (a
        re-run).

        `build` is handed the stored document it will replace (None: absent or unreadable)
        and returns the bytes to write, or None to write nothing (`Put.declined`): a writer
        whose document depends on what it replaces (predict carries the forecasts of the
        locations it skipped) builds it again on each try. A writer with fixed bytes
        passes `lambda _: data`.

        Compare-and-swap on the generation read: two writers racing cannot let the older
        stamp land last; the loser reads again and decides again, `attempts` times, then
        raises Contention (retryable: the run fails and the scheduler tries again).

        A stored document whose stamp cannot be read (`stamp_of` raises ValueError, KeyError,
        TypeError or IndexError: also the way to refuse a stamp, e.g. one dated after now)
        is replaced, and `Put.replaced` says why: it serves no reader as it is (every
        reader parses it the same way), only its writer can repair it, and refusing would
        stop the writer until someone deletes it.
        """
        for _ in range(attempts):
            current, generation, replaced = self._read_stamped(key, stamp, stamp_of)
            if isinstance(current, dt.datetime):
                return Put(written=False, newer=current)
            data = build(current)
            if data is None:
                return Put(written=False, declined=True, replaced=replaced)
            try:
                new = self.put_if_generation(key, data, generation, content_type)
            except GenerationMismatch:
                continue
            return Put(written=True, generation=new, replaced=replaced)
        raise Contention(f"{key} kept changing under this run ({attempts} attempts); retry")

    def _read_stamped(
        self, key: str, stamp: dt.datetime, stamp_of: Callable[[bytes], dt.datetime]
    ) -> tuple[bytes | dt.datetime | None, int, str | None]:
        """One read of `put_if_newer`: (the stored document to build on, or its stamp when
        it is later than `stamp`, or None; its generation; why it was unreadable)."""
        try:
            current, generation = self.get_with_generation(key)
        except ObjectMissing:
            return None, 0, None
        try:
            stored = stamp_of(current)
        except UNREADABLE as exc:
            return None, generation, f"{type(exc).__name__}: {exc}"
        return (stored if stored > stamp else current), generation, None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode()
