"""Blob stores: one suite against the local folder store and against a real S3-compatible server
(moto's standalone server on loopback, started here, with boto3 pointed at it by endpoint_url)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import boto3
import httpx
import pytest
import sqlalchemy as sa
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.server import ThreadedMotoServer

from app import db
from app.errors import Forbidden, NotFound
from app.settings import Settings
from app.storage import BlobMissing, LinkExpired, StorageUnavailable, create_store, retention
from app.storage.local import LocalBlobStore
from app.storage.s3 import S3BlobStore
from app.storage.signing import sign, verify, verify_blob_request
from app.tables import metadata, operations

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(2048)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Backend:
    store: LocalBlobStore | S3BlobStore
    fetch: Callable[[str, float], Awaitable[bytes]]  # follow a link as a client would, at time `now`
    break_down: Callable[[], None]  # make the store unreachable


def local_backend(tmp_path: Path) -> Backend:
    store = create_store(Settings(storage_url=f"file://{tmp_path}/blobs"))

    async def fetch(url: str, now: float) -> bytes:
        # What the app's GET /v1/blobs/{key} does with the link.
        parts = urlsplit(url)
        key = unquote(parts.path.removeprefix("/v1/blobs/"))
        query = dict(parse_qsl(parts.query))
        verify_blob_request(store, key, query.get("expires"), query.get("sig"), now)
        return await store.get(key)

    def break_down() -> None:
        shutil.rmtree(store.root)
        store.root.write_bytes(b"")  # a file where the folder was: every read and write fails

    return Backend(store, fetch, break_down)


def check_presigned(url: str, now: float) -> None:
    """What S3 checks on a presigned GET (moto serves them without checking): the SigV4 signature
    over the URL, then X-Amz-Date + X-Amz-Expires against the clock."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    unsigned = "&".join(p for p in parts.query.split("&") if not p.startswith("X-Amz-Signature="))
    request = AWSRequest(method="GET", url=urlunsplit(parts._replace(query=unsigned)), headers={"host": parts.netloc})
    request.context["timestamp"] = query["X-Amz-Date"]
    region = query["X-Amz-Credential"].split("/")[2]
    auth = S3SigV4QueryAuth(Credentials(AWS["AWS_ACCESS_KEY_ID"], AWS["AWS_SECRET_ACCESS_KEY"]), "s3", region,
                            expires=int(query["X-Amz-Expires"]))
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    if signature != query.get("X-Amz-Signature"):
        raise Forbidden("SignatureDoesNotMatch")
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    if now >= signed_at.timestamp() + int(query["X-Amz-Expires"]):
        raise LinkExpired("Request has expired")


def s3_backend(monkeypatch, sse: str | None = "AES256",
               kms_key_id: str | None = None) -> tuple[Backend, ThreadedMotoServer]:
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    bucket = f"trialzone-{uuid.uuid4().hex[:12]}"
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    store = create_store(Settings(storage_url=f"s3://{bucket}/blobs/", s3_endpoint_url=endpoint,
                                  s3_region="us-east-1", s3_sse=sse, s3_kms_key_id=kms_key_id))

    async def fetch(url: str, now: float) -> bytes:
        check_presigned(url, now)
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
        assert response.status_code == 200, response.text
        return response.content

    return Backend(store, fetch, server.stop), server


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path, monkeypatch):
    if request.param == "local":
        yield local_backend(tmp_path)
        return
    backend, server = s3_backend(monkeypatch)
    yield backend
    server.stop()


async def test_round_trip(backend):
    await backend.store.put("results/u1/op1.png", PNG, "image/png")
    assert await backend.store.get("results/u1/op1.png") == PNG


async def test_overwrite_is_atomic(backend):
    """Readers racing a writer see one whole version or the other, never a mix or a part."""
    first, second = b"a" * 2_000_000, b"b" * 3_000_000
    await backend.store.put("results/u1/op1.png", first, "image/png")
    seen: set[bytes] = set()

    async def read(n: int) -> None:
        for _ in range(n):
            seen.add(await backend.store.get("results/u1/op1.png"))

    async def write(n: int) -> None:
        for i in range(n):
            await backend.store.put("results/u1/op1.png", second if i % 2 == 0 else first, "image/png")

    await asyncio.gather(write(10), read(10), read(10))
    assert seen <= {first, second}
    await backend.store.put("results/u1/op1.png", second, "image/png")
    assert await backend.store.get("results/u1/op1.png") == second
    if isinstance(backend.store, LocalBlobStore):
        assert [p.name for p in (backend.store.root / "results/u1").iterdir()] == ["op1.png"]  # no temp files left


async def test_missing_key_and_idempotent_delete(backend):
    with pytest.raises(BlobMissing):
        await backend.store.get("results/u1/never.png")
    await backend.store.delete("results/u1/never.png")
    for key in ("inputs/u1/a", "inputs/u1/b"):
        await backend.store.put(key, PNG, "image/jpeg")
    await backend.store.delete_many(["inputs/u1/a", "inputs/u1/b", "inputs/u1/never"])
    for key in ("inputs/u1/a", "inputs/u1/b"):
        with pytest.raises(BlobMissing):
            await backend.store.get(key)


async def test_link_works_until_it_expires(backend):
    await backend.store.put("results/u1/op1.png", PNG, "image/png")
    url = await backend.store.url("results/u1/op1.png", 60)
    assert await backend.fetch(url, time.time()) == PNG
    with pytest.raises(LinkExpired):
        await backend.fetch(url, time.time() + 61)


async def test_tampered_link_is_refused(backend):
    for key in ("results/u1/op1.png", "results/u2/op2.png"):
        await backend.store.put(key, PNG, "image/png")
    url = await backend.store.url("results/u1/op1.png", 60)
    query = dict(parse_qsl(urlsplit(url).query))
    expiry = "expires" if "expires" in query else "X-Amz-Expires"
    signature = "sig" if "sig" in query else "X-Amz-Signature"
    tampered = [
        url.replace("u1/op1", "u2/op2"),  # another user's result
        url.replace(f"{expiry}={query[expiry]}", f"{expiry}={int(query[expiry]) + 86400}"),  # longer life
        url.replace(f"{signature}={query[signature]}", f"{signature}={query[signature][:-2]}AA"),
    ]
    for bad in tampered:
        with pytest.raises(Forbidden):
            await backend.fetch(bad, time.time())


async def test_store_outage_fails_fast(backend):
    """A dead store fails the operation within seconds (bounded timeouts and retries), so its
    hold is released instead of the request hanging."""
    await backend.store.put("results/u1/op1.png", PNG, "image/png")
    backend.break_down()
    for call in (lambda: backend.store.put("results/u1/op2.png", PNG, "image/png"),
                 lambda: backend.store.get("results/u1/op1.png"),
                 lambda: backend.store.delete_many(["results/u1/op1.png"])):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await call()
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("sse, kms_key_id", [("AES256", None), ("aws:kms", "alias/trialzone")])
async def test_s3_put_sets_content_type_and_encryption(monkeypatch, sse, kms_key_id):
    backend, server = s3_backend(monkeypatch, sse, kms_key_id)
    try:
        store = backend.store
        await store.put("results/u1/op1.png", PNG, "image/png")
        head = store.client.head_object(Bucket=store.bucket, Key="blobs/results/u1/op1.png")
        assert head["ContentType"] == "image/png"
        assert head["ServerSideEncryption"] == sse
        assert head.get("SSEKMSKeyId") == kms_key_id
        url = await store.presigned_url("results/u1/op1.png", 60, filename="cutout é.png")
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
        assert response.content == PNG
        assert response.headers["content-disposition"].startswith('attachment; filename="cutout .png"')
    finally:
        server.stop()


# Retention


@pytest.fixture
async def engine(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/retention.db")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all, tables=[operations])
    yield engine
    await db.dispose(engine)


async def test_retention_purges_inputs_then_results(backend, engine, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)  # several batches, so the watermark moves in between
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ops = [(f"op{i}", start + timedelta(hours=i)) for i in range(5)]  # one an hour
    async with engine.begin() as conn:
        for op_id, created in ops:
            await conn.execute(operations.insert().values(
                id=op_id, user_id="u1", feature="cutout", runner="local", status="succeeded", created_at=created,
                input_key=f"inputs/u1/{op_id}", result_key=f"results/u1/{op_id}.png"))
    for op_id, _ in ops:
        await backend.store.put(f"inputs/u1/{op_id}", PNG, "image/jpeg")
        await backend.store.put(f"results/u1/{op_id}.png", PNG, "image/png")

    async def kept(now: datetime) -> tuple[list[str], list[str], retention.PurgeReport]:
        report = await retention.purge(backend.store, engine, now, input_hours=24, result_days=7)
        inputs, results = [], []
        for op_id, _ in ops:
            for key, bucket in ((f"inputs/u1/{op_id}", inputs), (f"results/u1/{op_id}.png", results)):
                try:
                    await backend.store.get(key)
                    bucket.append(op_id)
                except BlobMissing:
                    pass
        return inputs, results, report

    every = [op_id for op_id, _ in ops]
    assert await kept(start + timedelta(hours=20)) == (every, every, retention.PurgeReport())
    assert await kept(start + timedelta(hours=26, minutes=30)) == (
        ["op3", "op4"], every, retention.PurgeReport(inputs=3))
    assert await kept(start + timedelta(days=3)) == ([], every, retention.PurgeReport(inputs=2))
    assert await kept(start + timedelta(days=7, hours=2, minutes=30)) == (
        [], ["op3", "op4"], retention.PurgeReport(results=3))
    assert await kept(start + timedelta(days=30)) == ([], [], retention.PurgeReport(results=2))
    assert await kept(start + timedelta(days=30)) == ([], [], retention.PurgeReport())  # idempotent

    async with engine.connect() as conn:  # records stay, keys included (so the API can say 410)
        rows = (await conn.execute(sa.select(operations.c.id, operations.c.result_key))).all()
    assert sorted(rows) == [(op_id, f"results/u1/{op_id}.png") for op_id, _ in ops]


# Configuration and signing


def test_create_store_from_settings(tmp_path, monkeypatch):
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    s3 = create_store(Settings(storage_url="s3://results-bucket/trial/zone/", s3_region="cn-north-1"))
    assert (s3.bucket, s3.prefix, s3.encryption) == ("results-bucket", "trial/zone/", {})
    assert create_store(Settings(storage_url="s3://results-bucket")).prefix == ""
    for bad in ("s3:///prefix", "ftp://host/x", "./var/blobs"):
        with pytest.raises(ValueError):
            create_store(Settings(storage_url=bad))

    first = create_store(Settings(storage_url=f"file://{tmp_path}/blobs"))
    key_file = tmp_path / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert create_store(Settings(storage_url=f"file://{tmp_path}/blobs")).signing_secret == first.signing_secret
    configured = create_store(Settings(storage_url=f"file://{tmp_path}/blobs", signing_secret="shared"))
    assert configured.signing_secret == "shared"


def test_signature_is_bound_to_key_expiry_and_secret():
    query = dict(parse_qsl(sign("results/u1/op1.png", 1000, "s3cret")))
    verify("results/u1/op1.png", 1000, query["sig"], "s3cret", now=999)
    for key, expires, secret in (("results/u1/op2.png", 1000, "s3cret"), ("results/u1/op1.png", 1001, "s3cret"),
                                 ("results/u1/op1.png", 1000, "other")):
        with pytest.raises(Forbidden):
            verify(key, expires, query["sig"], secret, now=0)
    with pytest.raises(LinkExpired):
        verify("results/u1/op1.png", 1000, query["sig"], "s3cret", now=1000)
    for expires, sig in ((None, query["sig"]), ("soon", query["sig"]), ("1000", None), ("1000", "é")):
        with pytest.raises(Forbidden):
            verify_blob_request("s3cret", "results/u1/op1.png", expires, sig, now=0)
    with pytest.raises(NotFound):  # an S3 deployment signs no links of its own
        verify_blob_request(object(), "results/u1/op1.png", "1000", query["sig"], now=0)
