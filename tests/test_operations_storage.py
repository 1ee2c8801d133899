"""Operations as records with results in a blob store: the same suite on the local folder store
and on a real S3-compatible server (moto's standalone server on loopback, boto3 via endpoint_url)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from litestar.testing import AsyncTestClient
from moto.server import ThreadedMotoServer

from app.main import create_app, housekeep
from app.storage import BlobMissing
from tests.conftest import make_settings
from tests.live import free_port
from tests.photos import jpeg

ALICE = {"X-User-Id": "alice"}
BOB = {"X-User-Id": "bob"}
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class Clock:
    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


class S3Server:
    def __init__(self):
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, bucket: str) -> None:
        self.server.start()
        boto3.client("s3", endpoint_url=self.url, **_aws()).create_bucket(Bucket=bucket)

    def stop(self) -> None:
        self.server.stop()


def _aws():
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(params=["local", "s3"])
async def env(request, tmp_path, monkeypatch):
    clock = Clock()
    s3 = None
    if request.param == "s3":
        for key, value in AWS.items():
            monkeypatch.setenv(key, value)
        s3 = S3Server()
        s3.start("trialzone-test")
        settings = make_settings(tmp_path, storage_url="s3://trialzone-test/results", s3_endpoint_url=s3.url,
                                 s3_addressing_style="path", s3_sse="AES256")
    else:
        settings = make_settings(tmp_path)
    app = create_app(settings, clock=clock)
    async with AsyncTestClient(app, timeout=60) as client:
        yield request.param, app, client, clock, s3, settings
    if s3:
        s3.stop()


async def cutout(client, headers=ALICE, **kwargs):
    return await client.post("/v1/operations/cutout", headers=headers,
                             files={"image": ("cat.jpg", jpeg("chelsea"), "image/jpeg")}, **kwargs)


async def follow(client, url: str) -> httpx.Response:
    """Fetch a result link as a phone would: the app's own route or the S3 server's."""
    parts = urlsplit(url)
    if parts.netloc == "testserver.local":
        return await client.get(f"{parts.path}?{parts.query}")
    async with httpx.AsyncClient() as http:
        return await http.get(url)


async def test_round_trip_record_result_and_signed_link(env):
    kind, app, client, clock, s3, _ = env
    response = await cutout(client)
    assert response.status_code == 200
    op_id = response.headers["x-operation-id"]

    record = (await client.get(f"/v1/operations/{op_id}", headers=ALICE)).json()
    assert record["status"] == "succeeded" and record["feature"] == "cutout" and record["model"] == "u2netp"
    assert record["tokens_charged"] == 31_000 and record["started_at"] and record["finished_at"]
    assert record["result_content_type"] == "image/png"
    again = await client.get(f"/v1/operations/{op_id}/result", headers=ALICE)
    assert again.status_code == 200 and again.content == response.content
    assert again.headers["content-type"] == "image/png"

    linked = await follow(client, record["result_url"])
    assert linked.status_code == 200 and linked.content == response.content

    if kind == "local":  # S3 checks its own presigned links (see tests/test_storage.py)
        tampered = record["result_url"].replace("sig=", "sig=A")
        assert (await follow(client, tampered)).status_code == 403
        clock.advance(seconds=app.state.settings.result_url_seconds + 120)
        expired = await follow(client, record["result_url"])
        assert expired.status_code == 410 and expired.json()["code"] == "link_expired"


async def test_json_answer_carries_the_record(env):
    _, _, client, _, _, _ = env
    response = await cutout(client, headers={**ALICE, "Accept": "application/json"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["id"] == response.headers["x-operation-id"] and body["status"] == "succeeded"
    assert body["result_url"]


async def test_retention_removes_inputs_then_results_and_keeps_records(env):
    _, app, client, clock, _, settings = env
    op_id = (await cutout(client)).headers["x-operation-id"]
    store = app.state.service.store
    op = await app.state.service.records.get(op_id)
    assert await store.get(op.input_key) == jpeg("chelsea")

    clock.advance(hours=settings.input_retention_hours + 1)
    await housekeep(app.state.service, settings)
    with pytest.raises(BlobMissing):
        await store.get(op.input_key)
    assert (await client.get(f"/v1/operations/{op_id}/result", headers=ALICE)).status_code == 200

    clock.advance(days=settings.result_retention_days)
    await housekeep(app.state.service, settings)
    gone = await client.get(f"/v1/operations/{op_id}/result", headers=ALICE)
    assert gone.status_code == 410 and gone.json()["code"] == "result_expired"
    record = (await client.get(f"/v1/operations/{op_id}", headers=ALICE)).json()
    assert record["status"] == "succeeded" and record["tokens_charged"] == 31_000


async def test_store_failure_releases_the_hold(env):
    kind, app, client, _, s3, _ = env
    if kind == "s3":
        s3.stop()
    else:
        root = app.state.service.store.root
        shutil.rmtree(root)
        root.write_bytes(b"")  # a file where the folder was: every write fails
    response = await cutout(client)
    assert response.status_code == 503 and response.json()["code"] == "storage_unavailable"
    ops = (await client.get("/v1/operations", headers=ALICE)).json()["items"]
    assert ops[0]["status"] == "failed" and ops[0]["error_code"] == "storage_unavailable"
    balance = (await client.get("/v1/me/balance", headers=ALICE)).json()
    assert balance["available"] == 500_000 and balance["held"] == 0
    assert (await client.get("/healthz")).status_code == 200


async def test_users_see_only_their_own_operations(env):
    _, _, client, _, _, _ = env
    op_id = (await cutout(client)).headers["x-operation-id"]
    for path in (f"/v1/operations/{op_id}", f"/v1/operations/{op_id}/result"):
        response = await client.get(path, headers=BOB)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert (await client.get("/v1/operations", headers=BOB)).json()["items"] == []
    listed = (await client.get("/v1/operations?feature=cutout&status=succeeded", headers=ALICE)).json()
    assert [o["id"] for o in listed["items"]] == [op_id]
    assert (await client.get("/v1/operations?status=failed", headers=ALICE)).json()["items"] == []
