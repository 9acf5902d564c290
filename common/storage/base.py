"""The ArtifactStore port: bytes by key, plus compare-and-swap for pointers.

Every object carries a generation (GCS's term): a number that changes on each write. A
conditional put succeeds only if the object's generation is still the one the writer read
(0 = "must not exist yet"), so two writers racing on `production.json` never both win.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from typing import Any

from common.core.errors import AircastError, NotFound, PreconditionFailed

KEY = re.compile(r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$")

# A missing object is the one `NotFound` (404) and a lost conditional put the one
# `PreconditionFailed` (412) of common.core.errors; re-exported here as the port's words.
__all__ = ["KEY", "ArtifactStore", "NotFound", "PreconditionFailed", "StoreError", "check_key"]


class StoreError(AircastError):
    """An artifact store operation failed (500): an unusable key or the store itself."""


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
        PreconditionFailed. Return the new generation."""

    @abstractmethod
    def get_with_generation(self, key: str) -> tuple[bytes, int]:
        """Return the bytes and their generation; raise NotFound if absent."""

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

    def exists(self, key: str) -> bool:
        return self.generation(key) != 0

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))

    def put_json(self, key: str, value: Any) -> int:
        return self.put(key, _dumps(value), "application/json")

    def put_json_if_generation(self, key: str, value: Any, generation: int) -> int:
        return self.put_if_generation(key, _dumps(value), generation, "application/json")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode()
