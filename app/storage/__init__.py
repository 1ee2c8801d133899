"""Blob store for uploads and results: a local folder by default, S3 at scale."""

from __future__ import annotations

from app.settings import Settings
from app.storage.base import BlobMissing, BlobStore, StorageUnavailable


def create_store(settings: Settings) -> BlobStore:
    url = settings.storage_url
    if url.startswith("file://"):
        from app.storage.local import LocalBlobStore

        return LocalBlobStore(url.removeprefix("file://"))
    raise ValueError(f"TRIALZONE_STORAGE_URL must be file://PATH (got {url!r})")


__all__ = ["BlobMissing", "BlobStore", "StorageUnavailable", "create_store"]
