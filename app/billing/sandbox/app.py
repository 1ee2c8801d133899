"""The billing sandbox's HTTP side: the protocol of docs/billing.md, plus the ways a carrier's
billing may behave, chosen per phone account with ``PUT /v1/sandbox/accounts/{account}``
(a Rule): charges paid, failed, declined at once, never answered or flaky; callbacks delayed,
delivered several times, badly signed or stale.

Charges live in memory: the sandbox stands in for someone else's system.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections import Counter
from typing import Literal

import httpx
import msgspec
from litestar import Litestar, Request, Response, get, post, put

from app.billing.protocol import (
    BillingCallback, BillingError, BillingErrorBody, ChargeAck, ChargeRequest, RefundAck, RefundRequest,
)
from app.vendors.signatures import secret_key, sign

log = logging.getLogger("billing-sandbox")

DEV_SECRET = "whsec_YmlsbGluZy1zYW5kYm94LWRldmVsb3BtZW50LXNlY3JldA=="  # base64("billing-sandbox-development-secret")
WRONG_SECRET = "whsec_bm90LXRoZS1iaWxsaW5nLXNlY3JldC15b3Utc2V0"  # signs `bad` callbacks
STALE_BY = 360  # s: a `stale` callback is signed this long ago, past the 300 s window


class Rule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How the charges of one phone account go."""

    outcome: Literal["paid", "failed", "decline", "never", "flaky"] = "paid"
    reason: str = "insufficient phone credit"  # failed / decline
    delay: float = 0.0  # s before the callback
    copies: int = 1  # deliveries of the same callback (same webhook-id)
    signature: Literal["good", "bad", "stale"] = "good"
    clock_offset: float = 0.0  # s added to the callback's timestamp (a test that moved our clock)
    fail_first: int = 2  # flaky: answer 503 to this many attempts first, then pay


class Charge(msgspec.Struct, kw_only=True):
    charge_id: str
    order_id: str
    account: str
    amount_fen: int
    description: str
    status: str  # pending | paid | failed | declined
    reason: str | None = None  # why it failed or was declined
    refunded_fen: int = 0
    deliveries: int = 0  # callbacks our side acknowledged
    refused: int = 0  # callbacks our side refused (4xx)


class SandboxSettings(msgspec.Struct, kw_only=True):
    api_key: str = "sandbox-key"
    secret: str = DEV_SECRET
    callback_attempts: int = 3

    def __post_init__(self):
        secret_key(self.secret)  # a bad --secret fails at start, not at the first callback


class Billing:
    def __init__(self, settings: SandboxSettings):
        self.settings = settings
        self.rules: dict[str, Rule] = {}
        self.charges: dict[str, Charge] = {}  # by Idempotency-Key
        self.refunds: dict[str, RefundAck] = {}  # by Idempotency-Key
        self.attempts: Counter[str] = Counter()
        self.running: set[asyncio.Task] = set()
        self.http = httpx.AsyncClient(timeout=10)

    def authorised(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.settings.api_key}".encode())

    def charge(self, key: str, body: ChargeRequest) -> Response:
        charge = self.charges.get(key)
        if charge is not None:  # the same order again: the same charge, no second callback
            return _answer(charge)
        rule = self.rules.get(body.account, Rule())
        if rule.outcome == "flaky":
            self.attempts[key] += 1
            if self.attempts[key] <= rule.fail_first:
                return _error(503, "flaky", f"attempt {self.attempts[key]} fails, as the sandbox was told")
        if body.amount_fen <= 0:
            return _error(422, "invalid_amount", "amount_fen must be positive")
        charge = Charge(charge_id="chg_" + secrets.token_hex(12), order_id=body.order_id, account=body.account,
                        amount_fen=body.amount_fen, description=body.description,
                        status="declined" if rule.outcome == "decline" else "pending",
                        reason=rule.reason if rule.outcome in ("decline", "failed") else None)
        self.charges[key] = charge
        if charge.status == "pending":
            job = asyncio.create_task(self.settle(charge, rule, body.callback_url))
            self.running.add(job)
            job.add_done_callback(self.running.discard)
        return _answer(charge)

    async def settle(self, charge: Charge, rule: Rule, callback_url: str | None) -> None:
        await asyncio.sleep(rule.delay)
        if rule.outcome == "never":
            return
        charge.status = "failed" if rule.outcome == "failed" else "paid"
        if callback_url:
            body = msgspec.json.encode(BillingCallback(
                order_id=charge.order_id, charge_id=charge.charge_id, status=charge.status,
                amount_fen=charge.amount_fen, reason=charge.reason))
            await self.call_back(charge, rule, callback_url, body)

    async def call_back(self, charge: Charge, rule: Rule, url: str, body: bytes) -> None:
        """Deliver ``rule.copies`` times under one webhook-id, each retried on failure as a
        carrier would."""
        webhook_id = "msg_" + secrets.token_hex(12)
        secret = WRONG_SECRET if rule.signature == "bad" else self.settings.secret
        for _ in range(rule.copies):
            for attempt in range(self.settings.callback_attempts):
                timestamp = int(time.time() + rule.clock_offset) - (STALE_BY if rule.signature == "stale" else 0)
                headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
                           "webhook-signature": sign(secret, webhook_id, timestamp, body),
                           "content-type": "application/json"}
                try:
                    response = await self.http.post(url, content=body, headers=headers)
                    if response.is_success:
                        charge.deliveries += 1
                        break
                    log.warning("callback for %s answered HTTP %s", charge.charge_id, response.status_code)
                    if response.status_code < 500:
                        charge.refused += 1
                        break  # refused on its merits (a bad signature): retrying cannot help
                except httpx.HTTPError as exc:
                    log.warning("callback for %s failed: %s", charge.charge_id, exc)
                await asyncio.sleep(0.5 * 2 ** attempt)

    def refund(self, key: str, body: RefundRequest) -> Response:
        if key in self.refunds:
            return _json(self.refunds[key], 200)
        charge = next((c for c in self.charges.values() if c.order_id == body.order_id), None)
        if charge is None:
            return _error(404, "not_found", f"no charge for order {body.order_id}")
        if charge.status != "paid":
            return _error(409, "not_paid", f"the charge is {charge.status}")
        if not 0 < body.amount_fen <= charge.amount_fen - charge.refunded_fen:
            return _error(422, "invalid_amount", f"{body.amount_fen} fen is more than is left to refund")
        charge.refunded_fen += body.amount_fen
        self.refunds[key] = RefundAck(refund_id="rfd_" + secrets.token_hex(12), amount_fen=body.amount_fen)
        return _json(self.refunds[key], 200)


def create_sandbox(settings: SandboxSettings) -> Litestar:
    billing = Billing(settings)

    def refused(request: Request) -> Response | None:
        return None if billing.authorised(request) else _error(401, "unauthorized", "send Authorization: Bearer <key>")

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @post("/v1/charges")
    async def create_charge(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        try:
            body = msgspec.json.decode(await request.body(), type=ChargeRequest)
        except msgspec.DecodeError as exc:
            return _error(400, "invalid_request", str(exc))
        return billing.charge(request.headers.get("idempotency-key") or body.order_id, body)

    @get("/v1/charges")
    async def list_charges(request: Request, account: str | None = None) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        found = [c for c in billing.charges.values() if account is None or c.account == account]
        return Response(msgspec.json.encode(found), media_type="application/json")

    @post("/v1/refunds")
    async def create_refund(request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        try:
            body = msgspec.json.decode(await request.body(), type=RefundRequest)
        except msgspec.DecodeError as exc:
            return _error(400, "invalid_request", str(exc))
        return billing.refund(request.headers.get("idempotency-key") or f"refund:{body.order_id}", body)

    @put("/v1/sandbox/accounts/{account:str}")
    async def set_rule(request: Request, account: str) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        try:
            billing.rules[account] = msgspec.json.decode(await request.body(), type=Rule)
        except msgspec.DecodeError as exc:
            return _error(400, "invalid_rule", str(exc))
        return _json(billing.rules[account], 200)

    async def close() -> None:
        for job in list(billing.running):
            job.cancel()
        await billing.http.aclose()

    app = Litestar([healthz, create_charge, list_charges, create_refund, set_rule], on_shutdown=[close],
                   openapi_config=None)
    app.state.billing = billing
    return app


def _answer(charge: Charge) -> Response:
    if charge.status == "declined":
        return _error(402, "declined", charge.reason or "the carrier declined the charge")
    return _json(ChargeAck(charge_id=charge.charge_id, status=charge.status), 202)


def _json(value: msgspec.Struct, status: int) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(BillingErrorBody(error=BillingError(code=code, message=message)), status)
