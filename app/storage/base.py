"""The blob store interface every implementation follows."""

from __future__ import annotations

from typing import Protocol

from app.errors import DomainError


class BlobMissing(KeyError):
    """No object under that key (never written, or removed by retention)."""


class StorageUnavailable(DomainError):
    code = "storage_unavailable"
    status = 503
    title = "Result storage is unavailable"


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Atomic: a reader sees the whole object or none of it."""

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...
