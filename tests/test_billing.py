"""Token packages bought on the phone bill, end to end: the billing sandbox as a real process on
loopback, our server as a real process (LiveServer) for purchases, failures, forged and stale
callbacks and refunds; the app with a moved clock, served on loopback in this process, for
renewal across a carrier month. Every token is accounted for: the ledger audit is clean at the end.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from app.billing import refund_amount
from app.billing.sandbox import DEV_SECRET
from app.db import create_engine, dispose, upgrade_async
from app.ledger import Ledger
from app.ledger.audit import audit
from app.ledger.policy import carrier_month
from app.main import create_app
from app.vendors.signatures import sign
from tests.conftest import make_settings
from tests.live import ROOT, LiveServer, free_port, server_env
from tests.photos import jpeg

ADMIN = {"Authorization": "Bearer admin-secret"}
SANDBOX_AUTH = {"Authorization": "Bearer sandbox-key"}
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-else-entirely-0001").decode()
GIFT = 500_000
PAYG, MONTHLY = 250_000, 10_000_000
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp("billing-sandbox") / "sandbox.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "app.billing.sandbox", "--port", str(port)],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


def billing_env(sandbox: str, port: int) -> dict[str, str]:
    return {"TRIALZONE_BILLING_URL": sandbox, "TRIALZONE_BILLING_API_KEY": "sandbox-key",
            "TRIALZONE_BILLING_CALLBACK_SECRETS": DEV_SECRET, "TRIALZONE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TRIALZONE_MODELS": "u2netp"}


@pytest.fixture(scope="module")
def server(sandbox, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("billing-live")
    port = free_port()
    env = server_env(tmp, **billing_env(sandbox, port))
    live = LiveServer(env, port, tmp / "server.log").start()
    yield live
    live.stop()
    done = subprocess.run([sys.executable, "-m", "app", "ledger", "audit"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# Helpers -----------------------------------------------------------------------------------------

def rule(sandbox: str, account: str, **how) -> None:
    httpx.put(f"{sandbox}/v1/sandbox/accounts/{account}", json=how, headers=SANDBOX_AUTH).raise_for_status()


def charges(sandbox: str, account: str) -> list[dict]:
    return httpx.get(f"{sandbox}/v1/charges", params={"account": account}, headers=SANDBOX_AUTH).json()


def buy(url: str, user: str, package: str, key: str | None) -> httpx.Response:
    headers = {"X-User-Id": user} | ({"Idempotency-Key": key} if key else {})
    return httpx.post(f"{url}/v1/orders", json={"package_id": package}, headers=headers, timeout=60)


def order(url: str, user: str, order_id: str) -> dict:
    return httpx.get(f"{url}/v1/orders/{order_id}", headers={"X-User-Id": user}).json()


def eventually(probe, timeout: float = 15.0):
    """Poll ``probe`` until it answers something truthy."""
    deadline = time.monotonic() + timeout
    while not (answer := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return answer


def settled(url: str, user: str, order_id: str) -> dict:
    return eventually(lambda: (o := order(url, user, order_id))["status"] != "pending" and o)


def balance(url: str, user: str) -> dict:
    return httpx.get(f"{url}/v1/me/balance", headers={"X-User-Id": user}).json()


def journal(url: str, user: str) -> list[dict]:
    return httpx.get(f"{url}/v1/me/ledger", headers={"X-User-Id": user}).json()["items"]


def deliver(url: str, body: dict, secret: str = DEV_SECRET, *, at: float | None = None) -> httpx.Response:
    """A callback as billing sends it, signed with ``secret`` at ``at`` under a new webhook-id."""
    raw = json.dumps(body).encode()
    webhook_id, timestamp = f"msg_test_{time.monotonic_ns()}", int(at or time.time())
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": sign(secret, webhook_id, timestamp, raw), "content-type": "application/json"}
    return httpx.post(f"{url}/v1/billing/callbacks", content=raw, headers=headers)


# Buying ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("package,kind,tokens", [("payg-1", "pay_as_you_go", PAYG), ("monthly-9.9", "package", MONTHLY)])
def test_a_package_grants_its_tokens_once(server, sandbox, package, kind, tokens):
    """Callback delivered three times under one webhook-id, once more under a new one, and the
    order POST retried with its key: one charge, one grant."""
    user = f"b-{package}"
    rule(sandbox, user, copies=3)
    first = buy(server.url, user, package, "key-1")
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["status"] == "pending" and first.headers["location"] == f"/v1/orders/{created['id']}"
    again = buy(server.url, user, package, "key-1")
    assert again.status_code == 200 and again.json()["id"] == created["id"]

    paid = settled(server.url, user, created["id"])
    assert paid["status"] == "paid" and paid["tokens"] == tokens
    eventually(lambda: charges(sandbox, user)[0]["deliveries"] == 3)
    [charge] = charges(sandbox, user)
    late = deliver(server.url, {"order_id": created["id"], "charge_id": charge["charge_id"], "status": "paid",
                                "amount_fen": charge["amount_fen"]})
    assert late.json() == {"status": "duplicate"}
    assert buy(server.url, user, package, "key-1").json()["status"] == "paid"

    assert balance(server.url, user)["available"] == GIFT + tokens
    grants = [e for e in journal(server.url, user) if e["kind"] == "grant" and e["amount"] == tokens]
    assert len(grants) == 1
    expires = datetime.fromisoformat(paid["expires_at"])
    if package == "payg-1":
        assert timedelta(days=364) < expires - datetime.now(UTC) <= timedelta(days=365)
        assert paid["renewal"] is None
    else:
        assert expires == carrier_month(datetime.now(UTC), SHANGHAI).end and paid["renewal"] == "active"


def test_a_failed_or_declined_charge_grants_nothing(server, sandbox):
    rule(sandbox, "b-failed", outcome="failed", reason="no credit left")
    failed = settled(server.url, "b-failed", buy(server.url, "b-failed", "payg-1", "k").json()["id"])
    assert failed["status"] == "failed" and failed["failure"] == "no credit left"

    rule(sandbox, "b-declined", outcome="decline", reason="account suspended")
    declined = buy(server.url, "b-declined", "monthly-9.9", "k")
    assert declined.status_code == 201 and declined.json()["status"] == "failed"
    assert "account suspended" in declined.json()["failure"] and declined.json()["renewal"] == "lapsed"
    for user in ("b-failed", "b-declined"):
        assert balance(server.url, user)["available"] == GIFT


@pytest.mark.parametrize("signature", ["bad", "stale"])
def test_forged_or_stale_callbacks_change_nothing(server, sandbox, signature):
    user = f"b-{signature}"
    rule(sandbox, user, signature=signature)
    created = buy(server.url, user, "payg-1", "k").json()
    eventually(lambda: charges(sandbox, user)[0]["refused"] == 1)
    assert order(server.url, user, created["id"])["status"] == "pending"
    body = {"order_id": created["id"], "charge_id": charges(sandbox, user)[0]["charge_id"], "status": "paid",
            "amount_fen": 100}
    for forged in (deliver(server.url, body, OTHER_SECRET), deliver(server.url, body, at=time.time() - 400)):
        assert forged.status_code == 401 and forged.json()["code"] == "bad_signature"
    wrong_amount = deliver(server.url, body | {"amount_fen": 1})
    assert wrong_amount.status_code == 400
    assert balance(server.url, user)["available"] == GIFT
    assert order(server.url, user, created["id"])["status"] == "pending"
    assert deliver(server.url, body).json() == {"status": "paid"}  # the genuine one still goes through
    assert balance(server.url, user)["available"] == GIFT + PAYG


def test_orders_are_the_buyers_own_and_need_a_key(server):
    missing = buy(server.url, "b-own", "payg-1", None)
    assert missing.status_code == 400 and missing.json()["code"] == "idempotency_key_required"
    unknown = buy(server.url, "b-own", "no-such-package", "k0")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_package"
    mine = buy(server.url, "b-own", "payg-1", "k1").json()
    reused = buy(server.url, "b-own", "monthly-9.9", "k1")
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    assert httpx.get(f"{server.url}/v1/orders/{mine['id']}", headers={"X-User-Id": "b-other"}).status_code == 404
    assert [o["id"] for o in httpx.get(f"{server.url}/v1/orders", headers={"X-User-Id": "b-own"}).json()] == [mine["id"]]
    assert httpx.get(f"{server.url}/v1/orders", headers={"X-User-Id": "b-other"}).json() == []
    cancel = httpx.post(f"{server.url}/v1/orders/{mine['id']}/cancel-renewal", headers={"X-User-Id": "b-own"})
    assert cancel.status_code == 409 and cancel.json()["code"] == "not_renewable"


# Refunds -----------------------------------------------------------------------------------------

def test_refund_takes_back_only_the_unspent_part(server, sandbox):
    user = "b-refund"
    paid = settled(server.url, user, buy(server.url, user, "payg-1", "k").json()["id"])
    cutout = httpx.post(f"{server.url}/v1/operations/cutout", files={"image": ("cat.jpg", jpeg("chelsea"), "image/jpeg")},
                        headers={"X-User-Id": user}, timeout=60)
    assert cutout.status_code == 200 and cutout.headers["x-tokens-charged"] == "31000"  # spent from the package first
    url = f"{server.url}/v1/admin/orders/{paid['id']}/refund"
    assert httpx.post(url, headers={"X-User-Id": user}).status_code == 401
    refunded = httpx.post(url, headers=ADMIN)
    assert refunded.status_code == 200, refunded.text
    unspent = PAYG - 31_000
    assert refunded.json()["status"] == "refunded" and refunded.json()["refunded_tokens"] == unspent
    assert refunded.json()["refunded_fen"] == refund_amount(100, PAYG, unspent) == 87  # 87.6 rounded down
    assert httpx.post(url, headers=ADMIN).json()["refund_id"] == refunded.json()["refund_id"]
    assert charges(sandbox, user)[0]["refunded_fen"] == 87
    assert balance(server.url, user)["available"] == GIFT  # the gift was not touched, the spent 31,000 stay spent
    [revoked] = [e for e in journal(server.url, user) if (e["note"] or "").startswith("revoked")]
    assert revoked["amount"] == -unspent and paid["id"] in revoked["note"]

    rule(sandbox, "b-refund-declined", outcome="decline")
    failed = buy(server.url, "b-refund-declined", "payg-1", "k").json()
    not_paid = httpx.post(f"{server.url}/v1/admin/orders/{failed['id']}/refund", headers=ADMIN)
    assert not_paid.status_code == 409 and not_paid.json()["code"] == "order_not_refundable"


def test_refund_amount_is_integer_fen_rounded_down():
    assert refund_amount(100, PAYG, PAYG) == 100 and refund_amount(100, PAYG, 0) == 0
    assert refund_amount(990, MONTHLY, MONTHLY - 1) == 989  # 989.999901 fen
    assert refund_amount(990, MONTHLY, 3_333_333) == 329  # 329.9999... fen


async def test_revoke_grant_takes_only_what_remains_once(tmp_path):
    """Captured tokens stay spent; held ones stay with their operation and, released after the
    refund, come back spendable; a second revoke moves nothing; the audit stays clean."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/ledger.db")
    await upgrade_async(engine)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    ledger = Ledger(engine, clock=lambda: now, welcome_gift_tokens=0)
    try:
        grant = await ledger.grant("u", kind="pay_as_you_go", amount=PAYG, source_ref="ord_test",
                                   expires_at=now + timedelta(days=365))
        deadline = now + timedelta(minutes=5)
        await ledger.capture((await ledger.reserve("u", 31_000, operation_id="op1", feature="cutout",
                                                   deadline=deadline)).id)
        held = await ledger.reserve("u", 40_000, operation_id="op2", feature="removal", deadline=deadline)
        revoked = await ledger.revoke_grant(grant.id, reason="refund of order ord_test", actor="admin")
        assert (revoked.remaining, revoked.held, revoked.captured, revoked.expired) == (0, 40_000, 31_000, 179_000)
        await ledger.release(held.id, reason="failed")
        again = await ledger.revoke_grant(grant.id, reason="refund of order ord_test")
        assert (again.remaining, again.expired) == (40_000, 179_000)
        assert (await ledger.balance("u")).available == 40_000
        assert await audit(engine) == []
    finally:
        await dispose(engine)


# Billing unavailable -----------------------------------------------------------------------------

async def test_billing_down_leaves_the_order_pending_for_a_retry(tmp_path):
    settings = make_settings(tmp_path, billing_url=f"http://127.0.0.1:{free_port()}",
                             billing_callback_secrets=DEV_SECRET)
    async with AsyncTestClient(create_app(settings), timeout=60) as client:
        headers = {"X-User-Id": "b-down", "Idempotency-Key": "k"}
        down = await client.post("/v1/orders", json={"package_id": "payg-1"}, headers=headers)
        assert down.status_code == 503 and down.json()["code"] == "billing_unavailable"
        pending = (await client.get(f"/v1/orders/{down.json()['order_id']}", headers=headers)).json()
        assert pending["status"] == "pending"
    async with AsyncTestClient(create_app(settings.replace(billing_url=None)), timeout=60) as client:
        off = await client.post("/v1/orders", json={"package_id": "payg-1"}, headers=headers | {"Idempotency-Key": "k2"})
        assert off.status_code == 503 and off.json()["code"] == "billing_unavailable"


# Renewal across a carrier month ------------------------------------------------------------------

class MovableClock:
    def __init__(self):
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_monthly_renewal_across_a_month_boundary(sandbox, tmp_path):
    """The app with a moved clock, served on loopback here so billing's callbacks reach it."""
    clock = MovableClock()
    port = free_port()
    env = billing_env(sandbox, port)
    settings = make_settings(tmp_path, reaper_interval=0.2, billing_url=sandbox,
                             billing_api_key="sandbox-key", billing_callback_secrets=DEV_SECRET,
                             public_url=env["TRIALZONE_PUBLIC_URL"])
    web = uvicorn.Server(uvicorn.Config(create_app(settings, clock=clock), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _ready(url), timeout=60)
        first = {}
        for user in ("r-keep", "r-cancel"):
            first[user] = settled(url, user, buy(url, user, "monthly-9.9", "k").json()["id"])
            assert first[user]["status"] == "paid"
        cancelled = httpx.post(f"{url}/v1/orders/{first['r-cancel']['id']}/cancel-renewal",
                               headers={"X-User-Id": "r-cancel"})
        assert cancelled.status_code == 200 and cancelled.json()["renewal"] == "cancelled"
        assert balance(url, "r-keep")["available"] == GIFT + MONTHLY

        next_month = carrier_month(datetime.now(UTC), SHANGHAI).end
        offset = next_month + timedelta(hours=1) - datetime.now(UTC)
        for user in ("r-keep", "r-cancel"):  # billing's clock agrees with ours, as in life
            rule(sandbox, user, clock_offset=offset.total_seconds())
        clock.offset = offset
        renewed = eventually(lambda: [o for o in _orders(url, "r-keep") if o["status"] == "paid"][1:])[0]
        assert renewed["id"] != first["r-keep"]["id"]
        assert datetime.fromisoformat(renewed["expires_at"]) == carrier_month(clock(), SHANGHAI).end
        eventually(lambda: balance(url, "r-keep")["available"] == GIFT + MONTHLY)  # last month's expired
        expired = [e for e in journal(url, "r-keep") if e["kind"] == "expire"]
        assert [e["amount"] for e in expired] == [-MONTHLY]

        clock.offset += timedelta(days=3)  # passes later in the month renew nothing more
        time.sleep(1.0)
        assert len(charges(sandbox, "r-keep")) == 2 and len(_orders(url, "r-keep")) == 2
        assert len(charges(sandbox, "r-cancel")) == 1 and len(_orders(url, "r-cancel")) == 1
        assert balance(url, "r-keep")["available"] == GIFT + MONTHLY
        eventually(lambda: balance(url, "r-cancel")["available"] == GIFT)
    finally:
        web.should_exit = True
        thread.join(30)
    engine = create_engine(settings.database_url)
    try:
        assert _run(audit(engine)) == []
    finally:
        _run(dispose(engine))


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def _orders(url: str, user: str) -> list[dict]:
    return sorted(httpx.get(f"{url}/v1/orders", headers={"X-User-Id": user}).json(), key=lambda o: o["created_at"])


def _run(coroutine):
    return asyncio.run(coroutine)
