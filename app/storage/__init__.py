"""Blob store for uploads and results: a local folder by default, S3 at scale."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from app.settings import Settings
from app.storage.base import BlobMissing, BlobStore, LinkExpired, StorageUnavailable


def create_store(settings: Settings) -> BlobStore:
    """``file://PATH`` -> local folder; ``s3://BUCKET/PREFIX`` -> S3 (or S3-compatible)."""
    url = settings.storage_url
    if url.startswith("file://"):
        from app.storage.local import LocalBlobStore
        from app.storage.signing import load_or_create_secret

        root = url.removeprefix("file://")
        # Unset: one secret per host, kept beside the folder (replicas sharing links must set it).
        secret = settings.signing_secret or load_or_create_secret(Path(root).resolve().parent / "signing.key")
        return LocalBlobStore(root, secret)
    if url.startswith("s3://"):
        from app.storage.s3 import S3BlobStore

        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"TRIALZONE_STORAGE_URL must name a bucket: s3://BUCKET/PREFIX (got {url!r})")
        return S3BlobStore(
            parts.netloc, parts.path, region=settings.s3_region, endpoint_url=settings.s3_endpoint_url,
            addressing_style=settings.s3_addressing_style, sse=settings.s3_sse, kms_key_id=settings.s3_kms_key_id,
        )
    raise ValueError(f"TRIALZONE_STORAGE_URL must be file://PATH or s3://BUCKET/PREFIX (got {url!r})")


__all__ = ["BlobMissing", "BlobStore", "LinkExpired", "StorageUnavailable", "create_store"]
