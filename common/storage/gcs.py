"""GCSStore: google-cloud-storage with generation preconditions for compare-and-swap."""

from __future__ import annotations

import contextlib

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from common.core.config import Settings
from common.storage.base import (
    ArtifactStore,
    GenerationMismatch,
    ObjectMissing,
    StoreError,
    check_key,
)


def make_client(settings: Settings) -> storage.Client:
    """A storage client; an endpoint override (emulator) uses anonymous credentials."""
    if settings.storage_endpoint:
        return storage.Client(
            project=settings.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": settings.storage_endpoint},
        )
    return storage.Client(project=settings.project)


class GCSStore(ArtifactStore):
    def __init__(self, settings: Settings, client: storage.Client | None = None) -> None:
        if not settings.bucket:
            raise StoreError("AIRCAST_BUCKET is required for Cloud Storage")
        self.client = client or make_client(settings)
        self.bucket = self.client.bucket(settings.bucket)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> int:
        blob = self.bucket.blob(check_key(key))
        blob.upload_from_string(data, content_type=content_type)
        return int(blob.generation or 0)

    def put_if_generation(
        self, key: str, data: bytes, generation: int, content_type: str = "application/json"
    ) -> int:
        blob = self.bucket.blob(check_key(key))
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=generation)
        except gexc.PreconditionFailed:
            raise GenerationMismatch(
                f"{key} changed: expected generation {generation}; another writer got there first"
            ) from None
        return int(blob.generation or 0)

    def get_with_generation(self, key: str) -> tuple[bytes, int]:
        for _ in range(3):  # the object may change between the metadata and the media read
            blob = self.bucket.get_blob(check_key(key))
            if blob is None:
                break
            generation = int(blob.generation or 0)  # read first: the download resets it
            try:
                return blob.download_as_bytes(if_generation_match=generation), generation
            except gexc.NotFound:
                break
            except gexc.PreconditionFailed:
                continue
        raise ObjectMissing(f"no artifact at gs://{self.bucket.name}/{key}")

    def head(self, key: str, size: int) -> bytes:
        try:  # a ranged GET (end inclusive): the first `size` bytes only
            return self.bucket.blob(check_key(key)).download_as_bytes(start=0, end=size - 1)
        except gexc.NotFound:
            raise ObjectMissing(f"no artifact at gs://{self.bucket.name}/{key}") from None

    def generation(self, key: str) -> int:
        blob = self.bucket.get_blob(check_key(key))
        return 0 if blob is None else int(blob.generation or 0)

    def list(self, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.client.list_blobs(self.bucket, prefix=prefix or None))

    def delete(self, key: str) -> None:
        with contextlib.suppress(gexc.NotFound):
            self.bucket.blob(check_key(key)).delete()
