"""The ArtifactStore port and its adapters, chosen by AIRCAST_BACKEND."""

from __future__ import annotations

from common.core.config import Settings
from common.storage.base import ArtifactStore, GenerationMismatch, ObjectMissing, StoreError

__all__ = ["ArtifactStore", "GenerationMismatch", "ObjectMissing", "StoreError", "open_store"]


def open_store(settings: Settings) -> ArtifactStore:
    """A folder under AIRCAST_HOME locally, the bucket on Google Cloud."""
    if settings.backend == "gcp":
        from common.storage.gcs import GCSStore

        return GCSStore(settings)
    from common.storage.local import LocalStore

    return LocalStore(settings.artifacts_path)
