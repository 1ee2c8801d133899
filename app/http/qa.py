"""The staff consoles: the QA page (``/qa``) with its test users, and the customer-service page
(``/support``) with its one write, an adjustment grant.

Test users are ids QA made here (table ``test_users``). A request bearing the QA credential and
``X-Test-User: <id>`` acts as that user through the public API, but only when the id is a flagged
test user: ``TestUserResolver`` (an ASGI middleware, ahead of the limits) looks the id up (cached
briefly) and marks the request; ``auth.current_user`` honours the mark and answers 403 otherwise.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.params import Parameter
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import run_read, run_write
from app.errors import InvalidRequest, NotFound, Unauthorized, Forbidden
from app.http.auth import (TEST_USER_HEADER, TEST_USER_SCOPE, USER_ID, require_staff, staff_guard,
                           staff_name)
from app.operations.service import OperationsService
from app.tables import test_users

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
WEB = ASSETS / "web"
SAMPLES = ASSETS / "samples"
CACHE_SECONDS = 30.0
_CACHE_ATTR = "test_user_cache"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
_PAGE_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# --- test users -------------------------------------------------------------------------------------

def _engine(app) -> AsyncEngine:
    return app.state.service.records.engine


def _cache(app) -> dict[str, float]:
    cache = getattr(app.state, _CACHE_ATTR, None)
    if cache is None:
        cache = {}
        setattr(app.state, _CACHE_ATTR, cache)
    return cache


async def is_test_user(app, user_id: str) -> bool:
    """Whether ``user_id`` is a flagged test user; a positive answer is cached for CACHE_SECONDS."""
    cache = _cache(app)
    now = time.monotonic()
    if cache.get(user_id, 0.0) > now:
        return True
    stmt = select(test_users.c.user_id).where(test_users.c.user_id == user_id)
    found = await run_read(_engine(app), lambda c: c.execute(stmt).first()) is not None
    if found:
        if len(cache) > 10_000:
            cache.clear()
        cache[user_id] = now + CACHE_SECONDS
    return found


class TestUserResolver(ASGIMiddleware):
    """Marks a request that bears the QA credential and names a flagged test user in
    ``X-Test-User``; ``current_user`` then acts as that user. Anything else passes unmarked (and
    ``current_user`` answers 401/403 for it)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        scope.pop(TEST_USER_SCOPE, None)  # type: ignore[misc]
        wanted = _header(scope)
        if wanted is not None and USER_ID.match(wanted):
            app = scope["litestar_app"]
            request = app.request_class(scope)
            try:
                require_staff(request, "qa")
                qa = True
            except (Unauthorized, Forbidden):
                qa = False
            if qa and await is_test_user(app, wanted):
                scope[TEST_USER_SCOPE] = wanted  # type: ignore[literal-required]
        await next_app(scope, receive, send)


def _header(scope: Scope) -> str | None:
    name = TEST_USER_HEADER.encode()
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            try:
                return value.decode("ascii")
            except UnicodeDecodeError:
                return None
    return None


class NewTestUser(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    label: Annotated[str, msgspec.Meta(max_length=40, pattern=r"^[A-Za-z0-9_-]*$")] = ""


class TopUp(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    amount: Annotated[int, msgspec.Meta(gt=0, le=10**10)]
    note: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class Adjustment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    amount: Annotated[int, msgspec.Meta(gt=0, le=10**10)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    expires_at: datetime | None = None


def _source_ref(prefix: str, user_id: str, key: str | None) -> str:
    """A grant's unique source_ref: the request's Idempotency-Key (hashed: bounded length, any
    characters) or a fresh one."""
    if key is None:
        return f"{prefix}:{user_id}:{uuid.uuid4().hex}"
    if not key.strip() or len(key) > 255:
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters")
    return f"{prefix}:{user_id}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


async def _require_test_user(request: Request, user_id: str) -> None:
    if not USER_ID.match(user_id) or not await is_test_user(request.app, user_id):
        raise NotFound("no such test user")


class QAController(Controller):
    path = "/v1/qa"
    tags = ["qa"]
    guards = [staff_guard("qa")]

    @get("/test-users", summary="Test users, newest first, with their balance")
    async def list_test_users(self, request: Request, service: OperationsService) -> dict:
        stmt = select(test_users).order_by(test_users.c.created_at.desc()).limit(100)
        rows = await run_read(_engine(request.app), lambda c: c.execute(stmt).all())
        items = []
        for r in rows:
            balance = await service.ledger.balance(r.user_id)
            items.append({"user_id": r.user_id, "created_by": r.created_by, "created_at": r.created_at,
                          "available": balance.available, "held": balance.held})
        return {"items": items}

    @post("/test-users", summary="Make a test user (welcome gift included)", status_code=201)
    async def create_test_user(self, request: Request, service: OperationsService,
                               data: NewTestUser | None = None) -> dict:
        operator = staff_name(request, "qa")
        label = (data.label if data else "") or "user"
        user_id = f"qa-{label}-{uuid.uuid4().hex[:10]}"
        now = service.clock()
        row = {"user_id": user_id, "created_by": operator, "created_at": now}
        await run_write(_engine(request.app), lambda c: c.execute(insert(test_users).values(**row)))
        _cache(request.app)[user_id] = time.monotonic() + CACHE_SECONDS
        balance = await service.ledger.balance(user_id)  # grants the welcome gift, as for any user
        return {**row, "available": balance.available, "held": balance.held}

    @post("/test-users/{user_id:str}/top-up", summary="Add tokens to a test user (an adjustment grant)",
          status_code=201)
    async def top_up(self, request: Request, service: OperationsService, user_id: str, data: TopUp,
                     idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key",
                                                                      required=False)] = None) -> dict:
        operator = staff_name(request, "qa")
        await _require_test_user(request, user_id)
        grant = await service.ledger.grant(
            user_id, kind="adjustment", amount=data.amount, source_ref=_source_ref("qa-top-up", user_id, idempotency_key),
            note=data.note or "QA top-up", actor=operator,
        )
        balance = await service.ledger.balance(user_id)
        return {"grant": msgspec.to_builtins(grant), "balance": msgspec.to_builtins(balance)}

    @post("/test-users/{user_id:str}/reset", summary="Bring a test user's balance back to the welcome amount",
          status_code=200)
    async def reset(self, request: Request, service: OperationsService, user_id: str) -> dict:
        operator = staff_name(request, "qa")
        await _require_test_user(request, user_id)
        ledger = service.ledger
        for grant in (await ledger.balance(user_id)).grants:
            if grant.remaining > 0:
                await ledger.revoke_grant(grant.id, reason="QA reset", actor=operator)
        target = request.app.state.settings.welcome_gift_tokens
        left = (await ledger.balance(user_id)).available  # a grant revoked before keeps what came back to it
        if target - left > 0:
            await ledger.grant(user_id, kind="adjustment", amount=target - left,
                               source_ref=_source_ref("qa-reset", user_id, None), note="QA reset", actor=operator)
        return {"balance": msgspec.to_builtins(await ledger.balance(user_id))}

    @get("/samples", summary="Sample photos shipped with the service")
    async def samples(self) -> list[dict]:
        files = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES) if SAMPLES.is_dir() else []
        return [{"name": p.stem, "url": f"/assets/samples/{p.name}"} for p in files]


# --- customer service ---------------------------------------------------------------------------------

class SupportController(Controller):
    path = "/v1/support"
    tags = ["support"]
    guards = [staff_guard("support", "admin")]

    @get("/whoami", summary="The signed-in operator, as journals name them")
    async def whoami(self, request: Request) -> dict:
        staff = require_staff(request, {"support", "admin"})
        return {"operator": staff.name, "role": staff.role}

    @post("/users/{user_id:str}/adjustments", summary="Grant a user tokens, with a reason, as the operator",
          status_code=201)
    async def adjust(self, request: Request, service: OperationsService, user_id: str, data: Adjustment,
                     idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key",
                                                                      required=False)] = None) -> dict:
        operator = staff_name(request, {"support", "admin"})
        if not USER_ID.match(user_id):
            raise InvalidRequest("the user id has characters we do not accept")
        reason = data.reason.strip()
        if not reason:
            raise InvalidRequest("give a reason for the adjustment", field="reason")
        grant = await service.ledger.grant(
            user_id, kind="adjustment", amount=data.amount, expires_at=data.expires_at,
            source_ref=_source_ref("support", user_id, idempotency_key), note=reason, actor=operator,
        )
        balance = await service.ledger.balance(user_id)
        return {"grant": msgspec.to_builtins(grant), "balance": msgspec.to_builtins(balance)}


# --- pages ----------------------------------------------------------------------------------------------

def _page(name: str) -> Response[bytes]:
    return Response((WEB / name).read_bytes(), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@get("/qa", include_in_schema=False, sync_to_thread=False)
def qa_page() -> Response[bytes]:
    return _page("qa.html")


@get("/support", include_in_schema=False, sync_to_thread=False)
def support_page() -> Response[bytes]:
    return _page("support.html")


__all__ = ["QAController", "SupportController", "TestUserResolver", "qa_page", "support_page", "is_test_user"]
