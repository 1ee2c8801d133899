"""Buying token packages on the phone bill: orders, billing's callbacks, monthly renewal, refunds.

An order is ``pending`` until billing's signed callback says ``paid`` (the package's grant is
issued with source_ref = the order id, so it happens once however often the callback comes, and
the order moves on only from pending) or ``failed`` (nothing granted). Billing de-duplicates
charges by order id, so charging again after a lost answer is safe. The states, the renewal
rules and the refund formula are in docs/billing.md.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Callable, Mapping
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.billing.client import BillingClient
from app.billing.protocol import BillingCallback
from app.billing.records import Order, OrderRecords, Subscription
from app.errors import (
    BillingRejected, BillingUnavailable, IdempotencyKeyReused, InvalidRequest, NotFound, NotRenewable,
    OrderNotRefundable, UnknownPackage,
)
from app.features.catalogue import Catalogue, Package
from app.ledger import Ledger
from app.ledger.policy import carrier_month, month_label
from app.vendors import receipts
from app.vendors.signatures import verify

log = logging.getLogger(__name__)

SOURCE = "billing"  # callback receipts' source
GRANT_KINDS = {"one_off": "pay_as_you_go", "monthly": "package"}
PAID = ("paid", "refunding", "refunded")


def refund_amount(price_fen: int, tokens: int, unspent: int) -> int:
    """Fen back for ``unspent`` of an order's ``tokens``: price_fen * unspent // tokens, in
    integers (never floats for money), rounded down, so a refund never exceeds what was paid."""
    return price_fen * unspent // tokens


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Orders:
    def __init__(self, engine: AsyncEngine, ledger: Ledger, catalogue: Catalogue, billing: BillingClient | None, *,
                 clock: Callable[[], datetime], timezone: str, callback_secrets: list[str]):
        self.engine = engine
        self.records = OrderRecords(engine)
        self.ledger = ledger
        self.catalogue = catalogue
        self.billing = billing
        self.clock = clock
        self.tz = ZoneInfo(timezone)
        self.callback_secrets = callback_secrets

    def _billing(self) -> BillingClient:
        if self.billing is None:
            raise BillingUnavailable("this deployment has no billing system configured (TRIALZONE_BILLING_URL)")
        return self.billing

    # Buying -------------------------------------------------------------------------------------

    async def create(self, user_id: str, package_id: str, idempotency_key: str) -> tuple[Order, bool]:
        """The order made with this key (charged again if billing never acknowledged it), or a
        new one, charged: (order, whether it is new)."""
        order = await self.records.by_key(user_id, idempotency_key)
        created = order is None
        if order is None:
            package = self.catalogue.packages.get(package_id)
            if package is None or not package.visible:
                raise UnknownPackage(f"no package {package_id!r} on sale; see GET /v1/packages")
            self._billing()  # none configured: 503 before anything is recorded
            order, subscription = self._new_order(user_id, package, idempotency_key)
            try:
                await self.records.insert(order, subscription)
            except IntegrityError:  # a concurrent request with the same key won the race
                order, created = await self.records.by_key(user_id, idempotency_key), False
                if order is None:
                    raise
        if order.package_id != package_id:
            raise IdempotencyKeyReused(f"this Idempotency-Key made order {order.id} for package {order.package_id!r}")
        if order.status == "pending" and order.charge_id is None:
            try:
                order = await self._charge(order)
            except BillingUnavailable as exc:
                exc.extra["order_id"] = order.id  # a retry with the same key charges it again
                raise
        return order, created

    def _new_order(self, user_id: str, package: Package, key: str | None) -> tuple[Order, Subscription | None]:
        now = self.clock()
        if package.validity != "monthly":
            return self._order(user_id, package, now, key=key), None
        subscription = Subscription(id=_new_id("sub"), user_id=user_id, package_id=package.id, status="pending",
                                    last_period=month_label(now, self.tz), created_at=now, ended_at=None)
        order = self._order(user_id, package, now, key=key, subscription_id=subscription.id,
                            period=subscription.last_period)
        return order, subscription

    def _order(self, user_id: str, package: Package, now: datetime, *, key: str | None = None,
               subscription_id: str | None = None, period: str | None = None) -> Order:
        return Order(
            id=_new_id("ord"), user_id=user_id, package_id=package.id, package_name=package.name,
            validity=package.validity, price_fen=package.price_fen, tokens=package.tokens,
            valid_days=package.valid_days if package.validity == "one_off" else None, status="pending",
            idempotency_key=key, subscription_id=subscription_id, period=period, charge_id=None, grant_id=None,
            expires_at=None, failure=None, refunded_tokens=None, refunded_fen=None, refund_id=None,
            refunded_by=None, created_at=now, paid_at=None, finished_at=None,
        )

    async def _charge(self, order: Order) -> Order:
        """Ask billing to charge; a decline fails the order at once, unavailability leaves it
        pending (and raises) for the buyer's retry or the next renewal pass."""
        try:
            ack = await self._billing().charge(order)
        except BillingRejected as exc:
            await self._fail(order, f"declined: {exc.detail}"[:500])
        else:
            await self.records.record_charge(order.id, ack.charge_id)
        return await self.records.get(order.id)

    async def _fail(self, order: Order, reason: str) -> bool:
        failed = await self.records.update(order.id, when=("pending",), status="failed", failure=reason,
                                           finished_at=self.clock())
        if failed and order.subscription_id:  # a monthly package whose charge failed stops renewing
            await self.records.lapse(order.subscription_id, self.clock())
        return failed

    # Reading ------------------------------------------------------------------------------------

    async def get(self, order_id: str, user_id: str | None = None) -> Order:
        """One order; a user asking for another user's order hears 404, as if it did not exist."""
        order = await self.records.get(order_id, user_id)
        if order is None:
            raise NotFound(f"no order {order_id}")
        return order

    async def of_user(self, user_id: str, limit: int = 50) -> list[Order]:
        return await self.records.of_user(user_id, limit)

    # Billing's callbacks ------------------------------------------------------------------------

    async def on_callback(self, headers: Mapping[str, str], body: bytes) -> str:
        """Verify (BadSignature: nothing changes), de-duplicate by webhook-id, then settle the
        order. Returns what happened, for the acknowledgement."""
        webhook_id = verify(self.callback_secrets, headers, body, self.clock().timestamp())
        try:
            callback = msgspec.json.decode(body, type=BillingCallback)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidRequest(f"the callback body does not follow the billing protocol: {exc}") from None
        if not await receipts.first_time(self.engine, SOURCE, webhook_id, self.clock()):
            return "duplicate"
        try:
            return await self._settle(await self.get(callback.order_id), callback)
        except (NotFound, InvalidRequest):
            raise  # billing's mistake: retrying the same callback cannot help
        except Exception:
            await receipts.forget(self.engine, SOURCE, webhook_id)  # ours: let billing's retry through
            raise

    async def _settle(self, order: Order, callback: BillingCallback) -> str:
        if callback.status == "failed":
            return "failed" if await self._fail(order, callback.reason or "billing reported failure") else "ignored"
        if callback.amount_fen != order.price_fen:
            raise InvalidRequest(f"billing says {callback.amount_fen} fen were paid; order {order.id} costs "
                                 f"{order.price_fen}")
        if order.status in PAID:
            return "duplicate"
        if order.status not in ("pending", "cancelled"):  # billing took the money: a cancelled renewal still gets it
            log.warning("billing reports order %s paid, but it is %s", order.id, order.status)
            return "ignored"
        now = self.clock()
        expires = (carrier_month(now, self.tz).end if order.validity == "monthly"
                   else now + timedelta(days=order.valid_days))
        grant = await self.ledger.grant(order.user_id, kind=GRANT_KINDS[order.validity], amount=order.tokens,
                                        source_ref=order.id, expires_at=expires,
                                        note=f"{order.package_name}, order {order.id}")
        await self.records.update(order.id, when=("pending", "cancelled"), status="paid", paid_at=now,
                                  charge_id=callback.charge_id, grant_id=grant.id, expires_at=grant.expires_at,
                                  failure=None, finished_at=None)
        if order.subscription_id:
            await self.records.paid_for(order.subscription_id, month_label(now, self.tz))
        return "paid"

    # Monthly renewal ----------------------------------------------------------------------------

    async def renew_due(self) -> list[Order]:
        """One pass (housekeeping): a renewal order for this carrier month per active monthly
        subscription that has none, then a charge for every order billing has not acknowledged.
        Returns the orders charged."""
        now = self.clock()
        period = month_label(now, self.tz)
        for subscription in await self.records.due(period):
            package = self.catalogue.packages.get(subscription.package_id)
            if package is None or package.validity != "monthly":  # withdrawn from sale: nothing to renew
                await self.records.lapse(subscription.id, now)
                continue
            await self.records.add_renewal(self._order(subscription.user_id, package, now,
                                                       subscription_id=subscription.id, period=period))
        charged = []
        for order in await self.records.uncharged():
            try:
                charged.append(await self._charge(order))
            except BillingUnavailable as exc:
                log.warning("renewal charges wait for billing: %s", exc.detail)
                break
        return charged

    async def cancel_renewal(self, order_id: str, user_id: str) -> Order:
        """Stop a monthly package renewing; this month's tokens stay until the month ends."""
        order = await self.get(order_id, user_id)
        if order.subscription_id is None:
            raise NotRenewable(f"order {order.id} is a one-off package; there is nothing to renew")
        await self.records.cancel(order.subscription_id, self.clock())
        return await self.get(order_id, user_id)

    # Refunds ------------------------------------------------------------------------------------

    async def refund(self, order_id: str, actor: str) -> Order:
        """Take back the unspent part of the order's grant, then give its price share back
        (refund_amount). Spent or held tokens stay spent. Safe to repeat: a refund stuck in
        ``refunding`` (billing unavailable) completes on the next call, with the same amounts."""
        order = await self.get(order_id)
        if order.status == "refunded":
            return order
        if order.status not in ("paid", "refunding"):
            raise OrderNotRefundable(f"order {order.id} is {order.status}")
        if order.refunded_fen is None:
            await self.records.update(order.id, when=("paid",), status="refunding", refunded_by=actor)
            unspent = 0
            if order.expires_at is None or order.expires_at > self.clock():  # an expired grant has nothing left
                grant = await self.ledger.revoke_grant(order.grant_id, reason=f"refund of order {order.id}",
                                                       actor=actor)
                unspent = grant.expired  # a live grant's expired tokens are exactly the revoked ones
            await self.records.update(order.id, refunded_tokens=unspent,
                                      refunded_fen=refund_amount(order.price_fen, order.tokens, unspent))
            if order.subscription_id:
                await self.records.cancel(order.subscription_id, self.clock())
            order = await self.get(order_id)
        refund_id = None
        if order.refunded_fen:
            refund_id = (await self._billing().refund(order, order.refunded_fen)).refund_id
        await self.records.update(order.id, when=("refunding",), status="refunded", refund_id=refund_id,
                                  finished_at=self.clock())
        return await self.get(order_id)
