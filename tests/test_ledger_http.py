"""The ledger through the HTTP API: idempotency, no overdraft, 402, balance, journal, quote,
staff grants, and crash safety with a real server process killed mid-operation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.main import create_app
from tests.conftest import make_settings
from tests.live import ROOT, LiveServer, free_port, server_env
from tests.photos import encode, photo

ADMIN = {"Authorization": "Bearer admin-secret"}


def small_photo() -> bytes:
    return encode(photo("chelsea").resize((160, 106)), "JPEG", quality=85)


@pytest.fixture
async def app_client(tmp_path):
    app = create_app(make_settings(tmp_path, queue_size=64))
    async with AsyncTestClient(app, timeout=120) as client:
        while not app.state.registry.ready:  # the warm-up run must not count as a request's
            await asyncio.sleep(0.05)
        yield app, client


async def post_cutout(client, user: str, key: str | None = None, data: bytes | None = None, **fields):
    headers = {"X-User-Id": user} | ({"Idempotency-Key": key} if key else {})
    return await client.post("/v1/operations/cutout", headers=headers, data=fields,
                             files={"image": ("p.jpg", data or small_photo(), "image/jpeg")})


async def test_twenty_concurrent_requests_with_one_key_run_and_charge_once(app_client):
    app, client = app_client
    runs = 0
    model = app.state.registry.get("u2netp")
    original = model.run_sync

    def counting(feeds, *rest):
        nonlocal runs
        runs += 1
        return original(feeds, *rest)

    model.run_sync = counting
    answers = await asyncio.gather(*(post_cutout(client, "idem", key="key-1") for _ in range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 409} and statuses.count(200) >= 1
    assert runs == 1
    bodies = {a.content for a in answers if a.status_code == 200}
    assert len(bodies) == 1
    ids = {a.headers["x-operation-id"] for a in answers if a.status_code == 200}
    assert len(ids) == 1
    # After it finished, the same key replays the first answer, headers included.
    replay = await post_cutout(client, "idem", key="key-1")
    assert replay.status_code == 200 and replay.content in bodies
    assert replay.headers["x-operation-id"] in ids and replay.headers["x-tokens-charged"] == "31000"
    assert replay.headers["x-tokens-remaining"] == "469000"
    assert runs == 1
    assert (await client.get("/v1/me/balance", headers={"X-User-Id": "idem"})).json()["available"] == 469_000


async def test_same_key_different_request_is_422(app_client):
    _, client = app_client
    assert (await post_cutout(client, "idem2", key="k")).status_code == 200
    other = await post_cutout(client, "idem2", key="k", format="webp")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    # Another user's identical key is a different key.
    assert (await post_cutout(client, "idem3", key="k", format="webp")).status_code == 200


async def test_no_overdraft_over_http_and_402_lists_packages(app_client):
    _, client = app_client
    answers = await asyncio.gather(*(post_cutout(client, "spender") for _ in range(20)))
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 16 and codes.count(402) == 4
    problem = next(a for a in answers if a.status_code == 402).json()
    assert problem["code"] == "insufficient_tokens" and problem["price"] == 31_000
    assert problem["balance"] in range(0, 31_000)
    assert {p["id"] for p in problem["packages"]} >= {"payg-1", "monthly-9.9"}
    balance = (await client.get("/v1/me/balance", headers={"X-User-Id": "spender"})).json()
    assert balance["available"] == 4_000 and balance["held"] == 0


async def test_balance_journal_and_quote(app_client):
    _, client = app_client
    user = {"X-User-Id": "reader"}
    quote = (await client.get("/v1/features/cutout/quote", headers=user)).json()
    assert quote["price"] == 31_000 and quote["quote"]["affordable"] is True
    assert quote["quote"]["parts"][0]["kind"] == "welcome_gift"
    await post_cutout(client, "reader")
    balance = (await client.get("/v1/me/balance", headers=user)).json()
    assert balance["available"] == 469_000
    assert [(g["kind"], g["remaining"]) for g in balance["grants"]] == [("welcome_gift", 469_000)]
    journal = (await client.get("/v1/me/ledger", headers=user)).json()["items"]
    texts = [e["text"] for e in journal]
    assert texts[0] == "Smart cutout, charged 31,000, balance 469,000"
    assert any(t.startswith("Welcome gift, +500,000") for t in texts)


async def test_admin_grants_are_idempotent_and_need_the_admin_credential(app_client):
    _, client = app_client
    body = {"user_id": "vip", "kind": "adjustment", "amount": 100_000, "source_ref": "ticket-42",
            "note": "goodwill"}
    assert (await client.post("/v1/admin/grants", json=body)).status_code == 401
    assert (await client.post("/v1/admin/grants", json=body,
                               headers={"Authorization": "Bearer wrong"})).status_code == 403
    first = await client.post("/v1/admin/grants", json=body, headers=ADMIN)
    second = await client.post("/v1/admin/grants", json=body, headers=ADMIN)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    view = (await client.get("/v1/admin/users/vip/ledger", headers=ADMIN)).json()
    assert view["balance"]["available"] == 600_000
    assert any("goodwill" in e["text"] for e in view["items"])


def test_sigkill_mid_operation_then_the_reaper_settles_and_audit_passes(tmp_path):
    env = server_env(tmp_path, TRIALZONE_MODELS="u2netp", TRIALZONE_HOLD_SECONDS="4",
                     TRIALZONE_REAPER_INTERVAL="0.5")
    server = LiveServer(env, free_port(), tmp_path / "server.log").start()
    user = {"X-User-Id": "crash"}
    big = encode(photo("astronaut").resize((4000, 4000)), "JPEG", quality=90)
    thread = threading.Thread(target=lambda: _ignore(lambda: httpx.post(
        f"{server.url}/v1/operations/cutout", headers=user, timeout=60,
        files={"image": ("big.jpg", big, "image/jpeg")})))
    try:
        thread.start()
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/v1/me/balance", headers=user).json()["held"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.kill()  # the hold is taken and the model is running
        thread.join()
        server.start()
        assert httpx.get(f"{server.url}/v1/me/balance", headers=user).json()["held"] in (0, 31_000)
        time.sleep(5)
        balance = httpx.get(f"{server.url}/v1/me/balance", headers=user).json()
        assert balance["held"] == 0 and balance["available"] == 500_000
        ops = httpx.get(f"{server.url}/v1/operations", headers=user).json()["items"]
        assert [(o["status"], o["error_code"]) for o in ops] == [("failed", "deadline")]
        assert ops[0]["result_content_type"] is None  # the result's key was recorded at the start; no result
    finally:
        server.stop()
    audit = subprocess.run([sys.executable, "-m", "app", "ledger", "audit"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0 and "every invariant holds" in audit.stdout, audit.stdout + audit.stderr


def _ignore(call):
    try:
        call()
    except httpx.HTTPError:
        pass
