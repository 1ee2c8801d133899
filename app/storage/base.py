"""The blob store interface every implementation follows, and its errors."""

from __future__ import annotations

from typing import Iterable, Protocol

from app.errors import DomainError


class BlobMissing(KeyError):
    """No object under that key (never written, or removed by retention)."""


class StorageUnavailable(DomainError):
    code = "storage_unavailable"
    status = 503
    title = "Result storage is unavailable"


class LinkExpired(DomainError):
    code = "link_expired"
    status = 410
    title = "This download link has expired"


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Atomic: a reader sees the whole object or none of it."""

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None:
        """No error when the object is already gone."""

    async def delete_many(self, keys: Iterable[str]) -> None:
        """Batched ``delete`` for retention (one request per 1,000 keys on S3)."""

    async def url(self, key: str, expires_in: int) -> str:
        """A link that downloads the object without other credentials, for ``expires_in`` seconds."""
