"""Token packages bought on the phone bill: the buyer's orders, billing's callback door, and
staff refunds (docs/billing.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from app.billing import Order, Orders
from app.errors import IdempotencyKeyRequired, InvalidRequest
from app.http.auth import current_user, staff_guard, staff_name

MAX_KEY = 255
MAX_CALLBACK_BYTES = 64 * 1024


class OrderRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    package_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class OrderView(msgspec.Struct, kw_only=True):
    """An order as its buyer sees it."""

    id: str
    package_id: str
    package_name: str
    validity: str  # one_off | monthly
    price_fen: int
    tokens: int
    status: str  # pending | paid | failed | cancelled | refunding | refunded
    renewal: str | None  # monthly packages: pending | active | cancelled | lapsed
    created_at: datetime
    paid_at: datetime | None
    expires_at: datetime | None  # when the granted tokens expire
    failure: str | None
    refunded_tokens: int | None
    refunded_fen: int | None


def view(order: Order) -> OrderView:
    return OrderView(**{f: getattr(order, f) for f in OrderView.__struct_fields__})


def _orders(request: Request) -> Orders:
    return request.app.state.orders


class OrdersController(Controller):
    path = "/v1/orders"
    tags = ["orders"]

    @post("/", summary="Buy a token package on the phone bill (Idempotency-Key required)", status_code=201)
    async def create(self, request: Request, data: OrderRequest) -> Response[OrderView]:
        """201 with a new order (pending until billing's callback), 200 when the key was used
        before for the same package (a retry), 422 idempotency_key_reused for another package."""
        user = current_user(request)
        key = request.headers.get("idempotency-key", "").strip()
        if not key:
            raise IdempotencyKeyRequired("send an Idempotency-Key header, the same one on every retry")
        if len(key) > MAX_KEY:
            raise InvalidRequest(f"the Idempotency-Key is longer than {MAX_KEY} characters")
        order, created = await _orders(request).create(user, data.package_id, key)
        return Response(view(order), status_code=201 if created else 200, headers={"Location": f"/v1/orders/{order.id}"})

    @get("/", summary="The caller's orders, newest first")
    async def list_orders(self, request: Request,
                          limit: Annotated[int, Parameter(ge=1, le=200)] = 50) -> list[OrderView]:
        return [view(o) for o in await _orders(request).of_user(current_user(request), limit)]

    @get("/{order_id:str}", summary="One of the caller's orders")
    async def get_order(self, request: Request, order_id: str) -> OrderView:
        return view(await _orders(request).get(order_id, current_user(request)))

    @post("/{order_id:str}/cancel-renewal", summary="Stop a monthly package renewing", status_code=200)
    async def cancel_renewal(self, request: Request, order_id: str) -> OrderView:
        return view(await _orders(request).cancel_renewal(order_id, current_user(request)))


@post("/v1/billing/callbacks", summary="The carrier's billing system reports a charge's outcome",
      tags=["partners"], status_code=200, request_max_body_size=MAX_CALLBACK_BYTES)
async def billing_callback(request: Request) -> dict:
    """Bad, missing or stale signature: 401 bad_signature and nothing changes. A repeated
    webhook-id: 200, ignored."""
    return {"status": await _orders(request).on_callback(request.headers, await request.body())}


@post("/v1/admin/orders/{order_id:str}/refund", summary="Refund an order's unspent tokens (admin)",
      tags=["admin"], status_code=200, guards=[staff_guard("admin")])
async def refund_order(request: Request, order_id: str) -> Order:
    """Revokes the grant's unspent tokens and refunds their share of the price in fen
    (docs/billing.md); repeating it is safe."""
    return await _orders(request).refund(order_id, staff_name(request, "admin"))
