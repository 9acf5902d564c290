"""LocalStore: a folder under AIRCAST_HOME standing in for the bucket.

Writes go to a temporary file and are renamed into place (atomic on POSIX), so a reader
never sees half an object. A per-store lock file serialises writers across processes, and
a hidden sidecar per object holds its generation for compare-and-swap.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

from filelock import FileLock

from common.core.faults import checkpoint
from common.storage.base import ArtifactStore, GenerationMismatch, ObjectMissing, check_key


class LocalStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.root / ".lock"), timeout=60)
        self._thread_lock = threading.RLock()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    @staticmethod
    def _gen_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.generation")

    def _read_gen(self, path: Path) -> int:
        if not path.exists():
            return 0
        try:
            return int(self._gen_path(path).read_text())
        except (FileNotFoundError, ValueError):
            return 1  # written by hand or by an older version: exists, generation unknown

    def _write(self, path: Path, data: bytes, generation: int, cas: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, payload in ((path, data), (self._gen_path(path), str(generation).encode())):
            tmp = target.with_name(f".tmp-{uuid.uuid4().hex}")
            with open(tmp, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            if cas and target == path:
                checkpoint("store:cas")  # tests: killed between the object and its generation

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> int:
        path = self._path(key)
        with self._thread_lock, self._lock:
            new = self._read_gen(path) + 1
            self._write(path, data, new)
        return new

    def put_if_generation(
        self, key: str, data: bytes, generation: int, content_type: str = "application/json"
    ) -> int:
        path = self._path(key)
        with self._thread_lock, self._lock:
            current = self._read_gen(path)
            if current != generation:
                raise GenerationMismatch(
                    f"{key} changed: expected generation {generation}, found {current}; "
                    "another writer got there first"
                )
            self._write(path, data, current + 1, cas=True)
        return current + 1

    def get_with_generation(self, key: str) -> tuple[bytes, int]:
        path = self._path(key)
        with self._thread_lock, self._lock:
            try:
                return path.read_bytes(), self._read_gen(path)
            except (FileNotFoundError, IsADirectoryError):
                raise ObjectMissing(f"no artifact at {key}") from None

    def head(self, key: str, size: int) -> bytes:
        path = self._path(key)
        with self._thread_lock, self._lock:
            try:
                with open(path, "rb") as fh:
                    return fh.read(size)
            except (FileNotFoundError, IsADirectoryError):
                raise ObjectMissing(f"no artifact at {key}") from None

    def generation(self, key: str) -> int:
        return self._read_gen(self._path(key))

    def list(self, prefix: str = "") -> list[str]:
        keys = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._thread_lock, self._lock:
            for p in (path, self._gen_path(path)):
                p.unlink(missing_ok=True)
