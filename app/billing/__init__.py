"""Token packages bought on the phone bill: orders charged by the carrier's billing system,
settled by its signed callbacks, renewed monthly, refunded by staff. See docs/billing.md."""

from __future__ import annotations

from datetime import datetime
from typing import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.billing.client import BillingClient, HttpBillingClient
from app.billing.orders import Orders, refund_amount
from app.billing.records import Order
from app.features.catalogue import Catalogue
from app.ledger import Ledger
from app.settings import Settings
from app.vendors.signatures import secret_key

__all__ = ["BillingClient", "HttpBillingClient", "Order", "Orders", "build_orders", "refund_amount"]


def build_orders(settings: Settings, *, engine: AsyncEngine, ledger: Ledger, catalogue: Catalogue,
                 http: httpx.AsyncClient, clock: Callable[[], datetime]) -> Orders:
    """The Orders service as settings describe it; a malformed callback secret fails here, at startup."""
    secrets = [s.strip() for s in settings.billing_callback_secrets.split(",") if s.strip()]
    for secret in secrets:
        secret_key(secret)
    billing = None
    if settings.billing_url:
        billing = HttpBillingClient(settings.billing_url, settings.billing_api_key, http,
                                    callback_url=settings.public_url.rstrip("/") + "/v1/billing/callbacks")
    return Orders(engine, ledger, catalogue, billing, clock=clock, timezone=settings.timezone,
                  callback_secrets=secrets)
