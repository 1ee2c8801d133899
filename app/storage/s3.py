"""S3 blob store through boto3: AWS, or any S3-compatible store (MinIO, Ceph, a cloud's OSS)
through ``endpoint_url``. Credentials come from boto3's usual chain (AWS_* variables, profile,
instance role). Every call is bounded (timeouts, few retries), so a dead store fails an
operation in seconds and its hold is released, rather than hanging the request."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterable, Iterator
from urllib.parse import quote

import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.base import BlobMissing, StorageUnavailable

log = logging.getLogger(__name__)

_MISSING = {"NoSuchKey", "NotFound", "404"}
_BATCH = 1000  # DeleteObjects takes at most this many keys


@contextmanager
def _mapped(key: str) -> Iterator[None]:
    """Not found -> BlobMissing; anything else the store or the network says -> StorageUnavailable
    (5xx, throttling, timeouts, refused connections, and also misconfiguration such as a missing
    bucket or denied access, which an operation can no more get past)."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise BlobMissing(key) from None
        log.warning("object store refused %s: %s", key, exc)
        raise StorageUnavailable(f"the object store refused the request ({code})") from None
    except BotoCoreError as exc:
        log.warning("object store unreachable for %s: %s", key, exc)
        raise StorageUnavailable("the object store is unreachable") from None


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str = "", *, region: str | None = None,
                 endpoint_url: str | None = None, addressing_style: str = "auto",
                 sse: str | None = None, kms_key_id: str | None = None,
                 connect_timeout: float = 2, read_timeout: float = 10, max_attempts: int = 3,
                 max_connections: int = 32):
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.encryption: dict[str, str] = {}
        if sse:
            self.encryption["ServerSideEncryption"] = sse
            if kms_key_id:
                self.encryption["SSEKMSKeyId"] = kms_key_id
        config = Config(
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_connections,
            s3={"addressing_style": addressing_style}, signature_version="s3v4",  # presigned URLs too
            # Checksums only where S3 requires them: many S3-compatible stores reject the rest.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        self.client = boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint_url,
                                                     config=config)

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """One PutObject: S3 makes the object visible whole or not at all."""
        await anyio.to_thread.run_sync(self._put, key, data, content_type)

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        with _mapped(key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type,
                                   **self.encryption)

    async def get(self, key: str) -> bytes:
        return await anyio.to_thread.run_sync(self._get, key)

    def _get(self, key: str) -> bytes:
        with _mapped(key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    async def delete(self, key: str) -> None:
        await self.delete_many([key])

    async def delete_many(self, keys: Iterable[str]) -> None:
        await anyio.to_thread.run_sync(self._delete_many, list(keys))

    def _delete_many(self, keys: list[str]) -> None:
        for start in range(0, len(keys), _BATCH):
            batch = keys[start:start + _BATCH]
            with _mapped(batch[0]):
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True})
            if answer.get("Errors"):
                error = answer["Errors"][0]
                log.warning("object store kept %d objects, e.g. %s", len(answer["Errors"]), error)
                raise StorageUnavailable(f"the object store could not delete {error.get('Key')} "
                                         f"({error.get('Code')})")

    async def url(self, key: str, expires_in: int) -> str:
        return await self.presigned_url(key, expires_in)

    async def presigned_url(self, key: str, expires_in: int, filename: str | None = None) -> str:
        """A presigned GET; ``filename`` makes browsers save it under that name."""
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            plain = filename.encode("ascii", "ignore").decode().replace('"', "").replace("\\", "")
            params["ResponseContentDisposition"] = (
                f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename)}")
        return await anyio.to_thread.run_sync(self._presign, key, params, expires_in)

    def _presign(self, key: str, params: dict[str, str], expires_in: int) -> str:
        with _mapped(key):
            return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
