"""Abuse limits, as ASGI middleware (docs/security.md explains each choice).

* **Request rate** per caller: Litestar's ``RateLimitConfig``/``RateLimitMiddleware`` keyed by
  ``auth.rate_identity`` (the verified user, a staff role, else the client address). A fixed
  window of one minute, ``TRIALZONE_RATE_LIMIT_PER_MINUTE`` requests. Over it: 429
  ``rate_limited`` with ``Retry-After`` (seconds to the window's end) and the RateLimit-* headers.
  Health, readiness, metrics, static assets, partners' signed callbacks and signed blob links
  are not counted.
* **Operations in flight** per user: at most ``TRIALZONE_USER_OPERATIONS_IN_FLIGHT`` concurrent
  ``POST /v1/operations/*``; one more is 429 ``rate_limited`` with ``Retry-After``.
* **Uploads in flight** per process: at most ``TRIALZONE_UPLOADS_IN_FLIGHT`` concurrent
  ``POST /v1/operations/*``; one more is 503 ``busy`` with ``Retry-After`` (the server is full,
  not the client at fault; the same answer as a full model queue). Kept in process on purpose:
  it bounds this process's memory (each upload is buffered whole).
* **Body size**: counted on the wire before any handler reads the body, for every route: a
  ``Content-Length`` over the route's limit is refused before one byte is read, and a body
  without one (chunked) is cut off as soon as it passes the limit (413). Routes with no limit
  of their own get the upload limit (TRIALZONE_MAX_UPLOAD_BYTES + 1 MiB).
* **Time**: a request must start its answer within ``TRIALZONE_REQUEST_TIMEOUT_SECONDS``:
  else 408 ``request_timeout`` while its body is still arriving (a slow client), or 503
  ``processing_timeout`` (the handler is cancelled; an operation's hold is released).

The rate counters and the per-user counters live in Redis when ``TRIALZONE_REDIS_URL`` is set
(shared by every replica; atomic Lua scripts), in process memory otherwise. If Redis fails, the
limits fail open (requests pass, a warning is logged at most once a minute): a Redis outage must
not take the service down with it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.middleware import ASGIMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import Busy, InvalidRequest, ProcessingTimeout, RateLimited, RequestTimeout, Unauthorized
from app.http.auth import current_user, rate_identity
from app.settings import Settings

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
STORE_NAME = "rate_limit"
# Never counted: probes and scrapes, static files, partners' signed callbacks (they retry on their
# own schedule, and one partner sends every user's callbacks from one address) and signed blob
# links (fetched by partners and by phones behind carrier NAT; each costs one HMAC before any read).
EXEMPT = re.compile(r"^/(healthz|readyz|metrics)/?$|^/assets/|^/v1/blobs/|^/v1/vendors/[^/]+/callbacks/?$"
                    r"|^/v1/billing/callbacks/?$")
OPERATION = re.compile(r"^/v1/operations/[^/]+/?$")  # POST here is an upload that runs a feature
UPLOAD_RETRY_AFTER = 1

try:  # what a broken shared store raises (the limits then fail open)
    from redis.exceptions import RedisError

    STORE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
except ImportError:  # pragma: no cover - redis is a dependency; memory counters raise nothing
    STORE_ERRORS = (OSError, TimeoutError)


class Counters:
    """Fixed windows and in-flight sets: in memory (one process) or Redis (every replica)."""

    async def hit(self, key: str, window: int) -> tuple[int, int]:
        """Count one request; answer (requests in this window, seconds until it ends)."""
        raise NotImplementedError

    async def acquire(self, key: str, limit: int, ttl: float) -> str | None:
        """Take one of ``limit`` slots; a token to release it, or None when all are taken."""
        raise NotImplementedError

    async def release(self, key: str, token: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class MemoryCounters(Counters):
    """One process's counters (touched only from the event loop thread: no lock needed)."""

    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, float]] = {}
        self.slots: dict[str, set[str]] = {}

    async def hit(self, key: str, window: int) -> tuple[int, int]:
        now = time.monotonic()
        count, ends = self.windows.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window
            if len(self.windows) > 100_000:  # drop finished windows now and then
                self.windows = {k: v for k, v in self.windows.items() if v[1] > now}
        self.windows[key] = (count + 1, ends)
        return count + 1, max(1, math.ceil(ends - now))

    async def acquire(self, key: str, limit: int, ttl: float) -> str | None:
        held = self.slots.setdefault(key, set())
        if len(held) >= limit:
            return None
        token = os.urandom(8).hex()
        held.add(token)
        return token

    async def release(self, key: str, token: str) -> None:
        held = self.slots.get(key)
        if held is not None:
            held.discard(token)
            if not held:
                del self.slots[key]


_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class RedisCounters(Counters):
    """Shared by every replica. Each in-flight slot carries its own expiry, so a replica that
    dies holding slots frees them after ``ttl`` without anyone cleaning up."""

    def __init__(self, url: str, namespace: str):
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5,
                                    health_check_interval=30)
        self.prefix = f"{namespace}:limits:"
        self._hit = self.redis.register_script(_HIT)
        self._acquire = self.redis.register_script(_ACQUIRE)

    async def hit(self, key: str, window: int) -> tuple[int, int]:
        count, ttl = await self._hit(keys=[self.prefix + "rate:" + key], args=[window])
        return int(count), max(1, int(ttl))

    async def acquire(self, key: str, limit: int, ttl: float) -> str | None:
        now = time.time()
        token = os.urandom(8).hex()
        ok = await self._acquire(keys=[self.prefix + "inflight:" + key],
                                 args=[now, now + ttl, limit, token, math.ceil(ttl) + 1])
        return token if int(ok) else None

    async def release(self, key: str, token: str) -> None:
        await self.redis.zrem(self.prefix + "inflight:" + key, token)

    async def close(self) -> None:
        await self.redis.aclose()


class _FailOpen:
    """Log a broken store at most once a minute, and let the request through."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self.last >= 60:
            self.last = now
            log.warning("limit store unavailable (%s: %s); %s is not enforced meanwhile",
                        type(exc).__name__, _safe(exc), what)


def _safe(exc: Exception) -> str:
    """An error's message without any URL (a Redis URL may carry a password)."""
    return re.sub(r"\w+://\S+", "<url>", str(exc))[:200]


# --- request rate ---------------------------------------------------------------------------------

@dataclass
class TrialzoneRateLimitConfig(RateLimitConfig):
    counters: Counters | None = field(default=None)


class TrialzoneRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's rate limiter, with the count taken in one atomic step of the shared counters
    (Litestar's own read-then-write is atomic only within one process) and ``Retry-After`` on
    the 429."""

    config: TrialzoneRateLimitConfig

    def __init__(self, app: ASGIApp, config: TrialzoneRateLimitConfig) -> None:
        super().__init__(app, config)
        self.window = WINDOW_SECONDS
        self.fail_open = _FailOpen()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request = app.request_class(scope)
        if not await self.should_check_request(request):
            await self.app(scope, receive, send)
            return
        key = self.cache_key_from_request(request)
        try:
            count, reset = await self.config.counters.hit(key, self.window)
        except STORE_ERRORS as exc:  # the store is down: fail open
            self.fail_open("the request rate limit", exc)
            await self.app(scope, receive, send)
            return
        headers = {
            self.config.rate_limit_policy_header_key: f"{self.max_requests}; w={self.window}",
            self.config.rate_limit_limit_header_key: str(self.max_requests),
            self.config.rate_limit_remaining_header_key: str(max(0, self.max_requests - count)),
            self.config.rate_limit_reset_header_key: str(reset),
        }
        if count > self.max_requests:
            raise RateLimited(f"more than {self.max_requests} requests a minute; try again in {reset} s",
                              headers=headers | {"Retry-After": str(reset)}, limit=self.max_requests)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                mutable = MutableScopeHeaders(message)
                for name, value in headers.items():
                    mutable[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _counted(request) -> bool:
    return not EXEMPT.match(request.url.path)


# --- operations and uploads in flight -----------------------------------------------------------------

class OperationGate(ASGIMiddleware):
    """Per-user (429) and per-process (503) caps on concurrent ``POST /v1/operations/*``."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, limits: "Limits"):
        self.limits = limits

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["method"] != "POST" or not OPERATION.match(scope["path"]):
            await next_app(scope, receive, send)
            return
        limits, settings = self.limits, self.limits.settings
        request = scope["litestar_app"].request_class(scope)
        try:
            user = current_user(request)
        except Unauthorized:  # the handler answers 401 before it reads the body
            await next_app(scope, receive, send)
            return
        token = None
        if settings.user_operations_in_flight > 0:
            try:
                token = await limits.counters.acquire(user, settings.user_operations_in_flight, limits.slot_ttl)
            except STORE_ERRORS as exc:
                limits.fail_open("the per-user operations limit", exc)
                token = ""
            if token is None:
                raise RateLimited(
                    f"{settings.user_operations_in_flight} operations of yours are already running; "
                    "wait for one to finish", headers={"Retry-After": str(UPLOAD_RETRY_AFTER)},
                    limit=settings.user_operations_in_flight,
                )
        try:
            cap = settings.uploads_in_flight
            if cap > 0 and limits.uploads >= cap:
                raise Busy("the service is handling as many uploads as it can; try again shortly",
                           headers={"Retry-After": str(settings.busy_retry_after)})
            limits.uploads += 1
            try:
                await next_app(scope, receive, send)
            finally:
                limits.uploads -= 1
        finally:
            if token:
                try:
                    await asyncio.shield(limits.counters.release(user, token))
                except STORE_ERRORS as exc:  # the slot expires on its own (slot_ttl)
                    limits.fail_open("the per-user operations limit", exc)


# --- body size --------------------------------------------------------------------------------------

class BodyLimit(ASGIMiddleware):
    """Every route's body limit, enforced on the bytes as they arrive."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, default_limit: int):
        self.default_limit = default_limit

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler = scope.get("route_handler")
        limit = None
        resolve = getattr(handler, "resolve_request_max_body_size", None)
        if resolve is not None:
            limit = resolve()
        if limit is None:
            limit = self.default_limit
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            raise RequestEntityTooLarge()
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestEntityTooLarge()
            return message

        await next_app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


# --- bodies that parse badly ----------------------------------------------------------------------

class GuardedRequest(Request):
    """The app's request class: body parsing failures Litestar lets through raw (a text part or
    JSON that is not UTF-8, an unknown charset, JSON nested deeper than the decoder's stack) are
    400 ``invalid_request`` instead of 500s."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except (UnicodeDecodeError, RecursionError):
            raise InvalidRequest("the body is not UTF-8 JSON of a sensible depth") from None

    async def form(self) -> Any:
        try:
            return await super().form()
        except (UnicodeDecodeError, LookupError):
            raise InvalidRequest("text fields must be UTF-8 (or name a charset we know)") from None


# --- time -------------------------------------------------------------------------------------------

class RequestDeadline(ASGIMiddleware):
    """uvicorn has no per-request timeout; this is it. The deadline covers everything until the
    response starts (reading the body included); a started response is never cut."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, seconds: float):
        self.seconds = seconds

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        body_pending = _has_body(scope)
        started = False
        deadline: asyncio.Timeout | None = None

        async def watched_receive() -> Message:
            nonlocal body_pending
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_pending = False
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                if deadline is not None:
                    deadline.reschedule(None)
            await send(message)

        try:
            async with asyncio.timeout(self.seconds) as deadline:
                await next_app(scope, watched_receive, watched_send)
        except TimeoutError:
            if started or deadline is None or not deadline.expired():
                raise
            if body_pending:
                raise RequestTimeout(f"the request body did not arrive within {self.seconds:g} s",
                                     headers={"Connection": "close"}) from None
            log.warning("%s %s passed its %g s deadline and was cancelled", scope["method"], scope["path"],
                        self.seconds)
            raise ProcessingTimeout(f"no answer within {self.seconds:g} s; nothing was charged for an "
                                    "unfinished operation", headers={"Retry-After": "5"}) from None


# --- wiring -----------------------------------------------------------------------------------------

class Limits:
    """Everything create_app needs: ``middleware``, ``stores`` and ``close`` (on shutdown)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.counters: Counters = (RedisCounters(settings.redis_url, settings.redis_namespace)
                                   if settings.redis_url else MemoryCounters())
        self.uploads = 0  # this process's uploads in flight (event loop thread only)
        timeout = settings.request_timeout_seconds
        self.slot_ttl = (timeout if timeout > 0 else 600) + 60  # a per-user slot outlives its request
        self.fail_open = _FailOpen()

    @property
    def stores(self) -> dict[str, Store]:
        if isinstance(self.counters, RedisCounters):
            from litestar.stores.redis import RedisStore

            return {STORE_NAME: RedisStore(self.counters.redis, namespace=f"{self.settings.redis_namespace}:store")}
        return {STORE_NAME: MemoryStore()}

    @property
    def middleware(self) -> list[Any]:
        settings = self.settings
        stack: list[Any] = []
        if settings.request_timeout_seconds > 0:
            stack.append(RequestDeadline(settings.request_timeout_seconds))
        if settings.rate_limit_per_minute > 0:
            stack.append(TrialzoneRateLimitConfig(
                rate_limit=("minute", settings.rate_limit_per_minute),
                identifier_for_request=rate_identity,
                check_throttle_handler=_counted,
                middleware_class=TrialzoneRateLimitMiddleware,
                store=STORE_NAME,
                counters=self.counters,
            ).middleware)
        stack.append(BodyLimit(settings.max_upload_bytes + 1024 * 1024))
        stack.append(OperationGate(self))
        return stack

    async def close(self) -> None:
        await self.counters.close()
