"""Talking to the carrier's billing system.

``BillingClient`` is all the orders flow needs; ``HttpBillingClient`` speaks the protocol of
docs/billing.md (the sandbox's) over HTTP. A real carrier integration is one more class with
these two methods. Requests are retried on what may be transient (timeouts, connection errors,
429, 5xx) with exponential backoff and jitter: safe, because each carries an Idempotency-Key
derived from the order, so billing charges or refunds an order once however often it is asked.
"""

from __future__ import annotations

from typing import Protocol

import httpx
import msgspec
from tenacity import (
    AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_exponential_jitter,
)

from app.billing.protocol import BillingErrorBody, ChargeAck, ChargeRequest, RefundAck, RefundRequest
from app.billing.records import Order
from app.errors import BillingRejected, BillingUnavailable


class BillingClient(Protocol):
    async def charge(self, order: Order) -> ChargeAck:
        """Ask billing to charge the order's phone account. BillingRejected: billing declined it
        (nothing will be charged); BillingUnavailable: it may or may not have arrived."""

    async def refund(self, order: Order, amount_fen: int) -> RefundAck:
        """Give ``amount_fen`` of a paid order back to the phone account."""


class _Transient(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


TRANSIENT = (httpx.TimeoutException, httpx.TransportError, _Transient)


class HttpBillingClient:
    def __init__(self, base_url: str, api_key: str | None, http: httpx.AsyncClient, *, callback_url: str,
                 attempts: int = 4, backoff: float = 0.3, max_backoff: float = 3.0, timeout: float = 10.0,
                 give_up_after: float = 20.0):
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.callback_url = callback_url
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.attempts, self.backoff, self.max_backoff = attempts, backoff, max_backoff
        self.timeout, self.give_up_after = timeout, give_up_after

    async def charge(self, order: Order) -> ChargeAck:
        body = ChargeRequest(order_id=order.id, account=order.user_id, amount_fen=order.price_fen,
                             description=order.package_name, callback_url=self.callback_url)
        return await self._post("/v1/charges", body, order.id, ChargeAck)

    async def refund(self, order: Order, amount_fen: int) -> RefundAck:
        body = RefundRequest(order_id=order.id, charge_id=order.charge_id, amount_fen=amount_fen)
        return await self._post("/v1/refunds", body, f"refund:{order.id}", RefundAck)

    async def _post(self, path: str, body: msgspec.Struct, key: str, answer: type):
        headers = self.headers | {"Idempotency-Key": key, "Content-Type": "application/json"}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.give_up_after),
            wait=wait_exponential_jitter(initial=self.backoff, max=self.max_backoff, jitter=self.backoff),
            retry=retry_if_exception_type(TRANSIENT),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._send(path, msgspec.json.encode(body), headers)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            reason = f"HTTP {last.response.status_code}" if isinstance(last, _Transient) else type(last).__name__
            raise BillingUnavailable(f"billing did not answer after {exc.last_attempt.attempt_number} "
                                     f"attempt(s): {reason}") from None
        try:
            return msgspec.json.decode(response.content, type=answer)
        except msgspec.DecodeError as exc:
            raise BillingRejected(f"billing's answer is not a valid {answer.__name__}: {exc}") from None

    async def _send(self, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        response = await self.http.post(self.base_url + path, content=content, headers=headers,
                                        timeout=self.timeout, follow_redirects=False)
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(response)
        if response.status_code >= 300:
            raise BillingRejected(f"billing answered HTTP {response.status_code}: {_message(response)}",
                                  billing_status=response.status_code)
        return response


def _message(response: httpx.Response) -> str:
    try:
        error = msgspec.json.decode(response.content, type=BillingErrorBody).error
        return f"{error.code}: {error.message}"[:500]
    except msgspec.DecodeError:
        return response.text[:200] or "(no body)"
