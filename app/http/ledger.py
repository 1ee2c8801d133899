"""The caller's tokens, and the staff side of the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter

from app.http.auth import current_user, require_role, staff_guard, staff_name
from app.operations.service import OperationsService


class GrantRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    kind: Literal["welcome_gift", "monthly_trial", "package", "pay_as_you_go", "adjustment", "refund"]
    amount: Annotated[int, msgspec.Meta(gt=0, le=10**12)]
    source_ref: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    expires_at: datetime | None = None
    note: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class MeController(Controller):
    path = "/v1/me"
    tags = ["tokens"]

    @get("/balance", summary="Available and held tokens, and each grant")
    async def balance(self, request: Request, service: OperationsService) -> dict:
        return msgspec.to_builtins(await service.ledger.balance(current_user(request)))

    @get("/ledger", summary="The caller's token journal, newest first")
    async def journal(
        self, request: Request, service: OperationsService,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50, before_id: int | None = None,
    ) -> dict:
        user = current_user(request)
        entries = await service.ledger.entries(user, limit=limit, before_id=before_id)
        return {"items": msgspec.to_builtins(entries),
                "next_before_id": entries[-1].id if len(entries) == limit else None}


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    guards = [staff_guard("admin", "support")]  # who may knock at all; each handler names its roles

    @post("/grants", summary="Grant tokens (idempotent by source_ref)", status_code=201)
    async def grant(self, request: Request, service: OperationsService, data: GrantRequest) -> dict:
        operator = staff_name(request, "admin")
        grant = await service.ledger.grant(
            data.user_id, kind=data.kind, amount=data.amount, source_ref=data.source_ref,
            expires_at=data.expires_at, note=data.note, actor=operator,
        )
        return msgspec.to_builtins(grant)

    @get("/users/{user_id:str}/ledger", summary="A user's balance and journal, for customer service")
    async def user_ledger(
        self, request: Request, service: OperationsService, user_id: str,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50, before_id: int | None = None,
    ) -> dict:
        require_role(request, {"admin", "support"})
        balance = await service.ledger.balance(user_id)
        entries = await service.ledger.entries(user_id, limit=limit, before_id=before_id)
        return {"balance": msgspec.to_builtins(balance), "items": msgspec.to_builtins(entries),
                "next_before_id": entries[-1].id if len(entries) == limit else None}
