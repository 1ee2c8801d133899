"""The carrier billing protocol as we speak it (docs/billing.md): what we send, what billing
answers, and the signed callback it sends once a charge settles. The sandbox speaks it too."""

from __future__ import annotations

from typing import Literal

import msgspec


class ChargeRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/charges`` with ``Idempotency-Key: <order_id>``: bill the phone account."""

    order_id: str
    account: str  # the phone account billed: our user id
    amount_fen: int
    description: str
    callback_url: str | None = None


class ChargeAck(msgspec.Struct, kw_only=True):
    """Billing took the charge; its outcome comes later, in a signed callback."""

    charge_id: str
    status: str = "pending"


class RefundRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/refunds`` with ``Idempotency-Key: refund:<order_id>``."""

    order_id: str
    charge_id: str | None
    amount_fen: int


class RefundAck(msgspec.Struct, kw_only=True):
    refund_id: str
    amount_fen: int
    status: str = "refunded"


class BillingCallback(msgspec.Struct, kw_only=True):
    """The body of ``POST /v1/billing/callbacks``, signed with Standard Webhooks headers."""

    order_id: str
    charge_id: str
    status: Literal["paid", "failed"]
    amount_fen: int
    reason: str | None = None  # why a charge failed, in billing's words


class BillingError(msgspec.Struct, kw_only=True):
    code: str
    message: str


class BillingErrorBody(msgspec.Struct, kw_only=True):
    error: BillingError
