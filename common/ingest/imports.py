"""History a deployed user brings: CSV objects under `imports/` of the artifact bucket.

On Google Cloud the function has no files of the user's, so `{"source": "csv", "path":
"gs://<bucket>/imports/..."}` names objects in the artifact bucket instead. They are read
through the ArtifactStore port into a temporary folder, which becomes the csv source's
only root for the run: the same parser and the same root check as a local file, and no
other object of the bucket (models, snapshots) can be read this way.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from common.core.config import Settings
from common.core.errors import BadRequest
from common.storage import ArtifactStore

IMPORTS_PREFIX = "imports/"


def is_gcs_path(path: str | None) -> bool:
    return bool(path) and str(path).startswith("gs://")


def import_keys(path: str, settings: Settings, store: ArtifactStore) -> list[str]:
    """The .csv keys a gs:// path names (one object, or every .csv under a prefix); a 400
    naming `path` for another bucket, a key outside imports/, or nothing to read."""
    if settings.backend != "gcp" or not settings.bucket:
        raise BadRequest("gs:// paths are read on the gcp backend only", field="path")
    bucket, _, key = path.removeprefix("gs://").partition("/")
    if bucket != settings.bucket or not key.startswith(IMPORTS_PREFIX) or ".." in key.split("/"):
        raise BadRequest(
            f"path: the csv source reads only gs://{settings.bucket}/{IMPORTS_PREFIX}...",
            field="path",
        )
    keys = [key] if key.endswith(".csv") else [k for k in store.list(key) if k.endswith(".csv")]
    if key.endswith(".csv") and not store.exists(key):
        raise BadRequest(f"path: {path} does not exist", field="path")
    if not keys:
        raise BadRequest(f"path: no .csv objects under {path}", field="path")
    return keys


@contextlib.contextmanager
def staged(path: str, settings: Settings, store: ArtifactStore) -> Iterator[tuple[Settings, str]]:
    """The objects copied to a temporary folder, and settings whose csv root is that folder
    (with the path to pass to the source). The folder is removed afterwards."""
    keys = import_keys(path, settings, store)
    with tempfile.TemporaryDirectory(prefix="aircast-import-") as tmp:
        for key in keys:
            (Path(tmp) / key.replace("/", "__")).write_bytes(store.get(key))
        root = Path(tmp)
        yield settings.model_copy(update={"csv_path": root}), str(root)
