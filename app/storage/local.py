"""Local folder blob store (the embedded default)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import anyio.to_thread

from app.storage.base import BlobMissing, StorageUnavailable


class LocalBlobStore:
    def __init__(self, root: str):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise BlobMissing(key)
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await anyio.to_thread.run_sync(self._put, key, data)

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # atomic: never a half-written result
        except OSError as exc:
            raise StorageUnavailable(f"could not write the result: {exc.strerror}") from None

    async def get(self, key: str) -> bytes:
        return await anyio.to_thread.run_sync(self._get, key)

    def _get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(key) from None

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
