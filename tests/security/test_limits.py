"""Abuse limits: request rate (memory and a real Redis), operations and uploads in flight,
body size (a chunked upload through a real server), and request time limits."""

from __future__ import annotations

import asyncio
import select
import socket
import time

import httpx
import pytest

import app.http.limits as limits_module
from tests.photos import encode, photo
from tests.security.conftest import (
    REDIS_URL, LogTrap, bearer, concurrent, in_process, needs_redis, security_settings, start_server, token, unique,
)

STORES = ["memory", pytest.param("redis", marks=needs_redis)]


def small_jpeg() -> bytes:
    return encode(photo("chelsea").resize((96, 64)), "JPEG", quality=80)


def store_settings(tmp_path, store: str, **overrides):
    if store == "redis":
        overrides |= {"redis_url": REDIS_URL, "redis_namespace": unique("tz-test")}
    return security_settings(tmp_path, **overrides)


def assert_rate_limited(response) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "rate_limited"
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


# --- request rate ------------------------------------------------------------------------------------

@pytest.mark.parametrize("store", STORES)
async def test_rate_limit_is_reached_and_recovers(tmp_path, monkeypatch, store):
    monkeypatch.setattr(limits_module, "WINDOW_SECONDS", 2)
    async with in_process(store_settings(tmp_path, store, rate_limit_per_minute=5)) as (_, client):
        alice, bob = bearer(token(unique("alice"))), bearer(token(unique("bob")))
        for i in range(5):
            response = await client.get("/v1/me/balance", headers=alice)
            assert response.status_code == 200, response.text
            assert response.headers["ratelimit-limit"] == "5"
            assert response.headers["ratelimit-remaining"] == str(4 - i)
        retry_after = assert_rate_limited(await client.get("/v1/me/balance", headers=alice))
        assert retry_after <= 2
        assert_rate_limited(await client.get("/v1/operations", headers=alice))  # every endpoint counts
        assert (await client.get("/v1/me/balance", headers=bob)).status_code == 200  # per user
        for path in ("/healthz", "/readyz", "/metrics") * 4:  # never limited
            assert (await client.get(path)).status_code == 200, path
        for _ in range(8):  # nor signed links (a bad signature is still refused, 403)
            assert (await client.get("/v1/blobs/results/x.png?expires=1&sig=AAAA")).status_code == 403
        await asyncio.sleep(retry_after + 0.2)
        assert (await client.get("/v1/me/balance", headers=alice)).status_code == 200  # recovered


@needs_redis
async def test_replicas_share_the_count_in_redis(tmp_path, monkeypatch):
    import redis.asyncio as aioredis

    namespace = unique("tz-replicas")
    settings = security_settings(tmp_path, rate_limit_per_minute=4, redis_url=REDIS_URL, redis_namespace=namespace)
    alice = bearer(token(unique("alice")))
    (tmp_path / "two").mkdir()
    replica = security_settings(tmp_path / "two", rate_limit_per_minute=4, redis_url=REDIS_URL,
                                redis_namespace=namespace)
    async with in_process(settings) as (_, one), in_process(replica) as (_, two):
        for client in (one, two, one, two):
            assert (await client.get("/v1/me/balance", headers=alice)).status_code == 200
        assert_rate_limited(await one.get("/v1/me/balance", headers=alice))
        assert_rate_limited(await two.get("/v1/me/balance", headers=alice))
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(f"{namespace}:*")]
        assert keys and all(k.startswith(f"{namespace}:limits:".encode()) for k in keys)
        assert all([await client.ttl(k) > 0 for k in keys])  # nothing is kept forever
    finally:
        await client.aclose()


async def test_anonymous_callers_are_counted_by_address_and_forged_tokens_spend_nothing_of_the_victim(tmp_path):
    async with in_process(security_settings(tmp_path, rate_limit_per_minute=3)) as (_, client):
        victim = unique("victim")
        forged = bearer(token(victim, key="attacker-chosen-secret-0123456789abcdef"))
        for _ in range(3):
            assert (await client.get("/v1/me/balance", headers=forged)).status_code == 401
        assert_rate_limited(await client.get("/v1/me/balance", headers=forged))
        assert_rate_limited(await client.get("/v1/features"))  # the same address, anonymous
        assert (await client.get("/v1/me/balance", headers=bearer(token(victim)))).status_code == 200


async def test_a_broken_redis_fails_open_and_its_url_stays_out_of_the_logs(tmp_path):
    password = "redis-password-6f1e2d"
    settings = security_settings(tmp_path, rate_limit_per_minute=2, redis_url=f"redis://:{password}@127.0.0.1:1/0")
    async with in_process(settings) as (_, client):
        with LogTrap() as logs:
            user = bearer(token(unique("alice")))
            for _ in range(4):
                assert (await client.get("/v1/me/balance", headers=user)).status_code == 200
    assert "not enforced" in logs.text
    assert password not in logs.text


# --- operations and uploads in flight -------------------------------------------------------------------

class Blocker:
    """Holds every cutout inside the runner until released, so requests really overlap."""

    def __init__(self, app):
        self.runner = app.state.service.runners["cutout"]
        self.original = self.runner.run
        self.entered = 0
        self.gate = asyncio.Event()
        self.runner.run = self.run

    async def run(self, prepared):
        self.entered += 1
        await self.gate.wait()
        return await self.original(prepared)

    async def until(self, count: int, tasks=()) -> None:
        deadline = time.monotonic() + 60
        while self.entered < count:
            for task in tasks:
                if task.done():  # it answered without reaching the runner: show why
                    response = task.result()
                    raise AssertionError(f"{response.status_code} {response.text[:300]}")
            assert time.monotonic() < deadline, f"{self.entered} of {count} requests reached the runner"
            await asyncio.sleep(0.01)


async def upload(client, user: str):
    return await client.post("/v1/operations/cutout", headers=bearer(token(user)),
                             files={"image": ("p.jpg", small_jpeg(), "image/jpeg")})


async def settle(client, *users: str) -> None:
    """Touch each new user's account first. (Two *concurrent* first operations of a brand-new
    user can see a 402: the ledger's reserve filters grants by the `now` it took before a racing
    request granted the welcome gift at a later `now`; reported to the ledger's owner.)"""
    for user in users:
        assert (await balance(client, user))["available"] == 500_000


async def balance(client, user: str) -> dict:
    return (await client.get("/v1/me/balance", headers=bearer(token(user)))).json()


@pytest.mark.parametrize("store", STORES)
async def test_operations_in_flight_per_user(tmp_path, store):
    settings = store_settings(tmp_path, store, user_operations_in_flight=2, uploads_in_flight=10)
    async with concurrent(settings) as (app, client):
        blocker = Blocker(app)
        alice, bob = unique("alice"), unique("bob")
        await settle(client, alice, bob)
        running = [asyncio.create_task(upload(client, alice)) for _ in range(2)]
        await blocker.until(2, running)
        assert_rate_limited(await upload(client, alice))
        running.append(asyncio.create_task(upload(client, bob)))  # another user is not held back
        await blocker.until(3, running)
        blocker.gate.set()
        assert [r.status_code for r in await asyncio.gather(*running)] == [200, 200, 200]
        assert (await upload(client, alice)).status_code == 200  # slots come back
        assert (await balance(client, alice))["available"] == 500_000 - 3 * 31_000  # the 429 cost nothing


async def test_uploads_in_flight_per_process_answer_busy(tmp_path):
    settings = security_settings(tmp_path, user_operations_in_flight=4, uploads_in_flight=2)
    async with concurrent(settings) as (app, client):
        blocker = Blocker(app)
        ann, ben, carol = unique("ann"), unique("ben"), unique("carol")
        await settle(client, ann, ben, carol)
        running = [asyncio.create_task(upload(client, name)) for name in (ann, ben)]
        await blocker.until(2, running)
        response = await upload(client, carol)
        assert response.status_code == 503 and response.json()["code"] == "busy", response.text
        assert int(response.headers["retry-after"]) >= 1
        blocker.gate.set()
        assert [r.status_code for r in await asyncio.gather(*running)] == [200, 200]
        assert (await balance(client, carol))["available"] == 500_000
        assert (await upload(client, carol)).status_code == 200
        assert app.state.limits.uploads == 0


async def test_a_request_past_its_deadline_is_cancelled_and_costs_nothing(tmp_path):
    settings = security_settings(tmp_path, request_timeout_seconds=1)
    async with concurrent(settings) as (app, client):
        runner = app.state.service.runners["cutout"]

        async def slow(prepared):
            await asyncio.sleep(30)

        runner.run = slow
        user = unique("slow")
        started = time.monotonic()
        response = await upload(client, user)
        assert time.monotonic() - started < 5
        assert response.status_code == 503 and response.json()["code"] == "processing_timeout", response.text
        deadline = time.monotonic() + 5
        while (state := await balance(client, user))["held"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert state["available"] == 500_000 and state["held"] == 0
        ops = (await client.get("/v1/operations", headers=bearer(token(user)))).json()["items"]
        assert [(o["status"], o["error_code"]) for o in ops] == [("failed", "cancelled")]
        assert (await client.get("/healthz")).status_code == 200


async def test_a_body_over_the_limit_is_413_in_process(tmp_path):
    settings = security_settings(tmp_path, max_upload_bytes=50_000)
    limit = 50_000 + 1024 * 1024
    async with in_process(settings) as (_, client):
        user = unique("big")
        response = await client.post("/v1/operations/cutout", headers=bearer(token(user)),
                                     files={"image": ("big.jpg", b"\xff" * (limit + 10), "image/jpeg")})
        assert response.status_code == 413 and response.json()["code"] == "image_too_large"
        grant = await client.post("/v1/admin/grants", headers=bearer("admin-secret"),
                                  content=b'{"user_id": "' + b"a" * limit + b'"}')
        assert grant.status_code == 413
        assert (await balance(client, user))["available"] == 500_000


# --- through a real server: chunked bodies, lying lengths, slow bodies -------------------------------------

MAX_UPLOAD = 200_000
LIMIT = MAX_UPLOAD + 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_server(tmp_path_factory.mktemp("limits"), TRIALZONE_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
                        TRIALZONE_REQUEST_TIMEOUT_SECONDS="2")
    yield live
    live.stop()


def exchange(port: int, head: bytes, chunks=(), pause: float = 0.0, read_timeout: float = 20) -> tuple[int, dict, bytes, int]:
    """Send ``head`` then ``chunks`` until the server answers or hangs up; then read the answer.
    Returns (status, headers, body, bytes of body sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = 0
    try:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered (or closed): stop sending
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                break
            sent += len(chunk)
        if pause:
            time.sleep(pause)
        sock.settimeout(read_timeout)
        data = b""
        try:
            while b"\r\n\r\n" not in data or len(data) < _expected(data):
                more = sock.recv(65536)
                if not more:
                    break
                data += more
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        sock.close()
    head_part, _, body = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body, sent


def _expected(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return 1 << 62


def request_head(server, *, user: str, extra: str) -> bytes:
    return (f"POST /v1/operations/cutout HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {token(user)}\r\n"
            f"Content-Type: multipart/form-data; boundary=XyZ\r\n{extra}\r\n").encode()


def chunked(pieces):
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def multipart_pieces(image: bytes, piece: int = 64 * 1024):
    yield b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    for i in range(0, len(image), piece):
        yield image[i:i + piece]
    yield b"\r\n--XyZ--\r\n"


def test_a_chunked_upload_without_content_length_is_cut_off(server):
    user = unique("chunked")
    endless = (b"\xff" * (64 * 1024) for _ in range(1024))  # 64 MiB offered
    status, headers, body, sent = exchange(
        server.port, request_head(server, user=user, extra="Transfer-Encoding: chunked\r\n"),
        chunked(_prefixed(endless)))
    assert status == 413, body
    assert b'"code":"image_too_large"' in body
    assert sent < 16 * 1024 * 1024, f"the server read {sent:,} bytes before refusing"
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/v1/me/balance", headers=bearer(token(user))).json()["available"] == 500_000


def _prefixed(pieces):
    yield b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    yield from pieces


def test_a_small_chunked_upload_still_works(server):
    status, headers, body, _ = exchange(
        server.port, request_head(server, user=unique("chunked-ok"), extra="Transfer-Encoding: chunked\r\n"),
        chunked(multipart_pieces(small_jpeg(), piece=1000)))
    assert status == 200, body[:300]
    assert headers["content-type"] == "image/png"


def test_a_declared_length_over_the_limit_is_refused_before_the_body(server):
    started = time.monotonic()
    status, _, body, _ = exchange(
        server.port, request_head(server, user=unique("liar"), extra=f"Content-Length: {10**9}\r\n"))
    assert status == 413 and b"image_too_large" in body
    assert time.monotonic() - started < 5


def test_a_slow_body_gets_408(server):
    user = unique("loris")
    first = b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n\r\n'
    started = time.monotonic()
    status, headers, body, _ = exchange(
        server.port, request_head(server, user=user, extra="Content-Length: 100000\r\n"), [first], pause=0.1)
    assert status == 408, body
    assert b'"code":"request_timeout"' in body
    assert 1.5 < time.monotonic() - started < 10
    assert httpx.get(f"{server.url}/v1/me/balance", headers=bearer(token(user))).json()["available"] == 500_000
    assert httpx.get(f"{server.url}/healthz").status_code == 200
