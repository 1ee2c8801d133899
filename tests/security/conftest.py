"""Helpers of the security suite: tokens, settings, the app in process (sequential or truly
concurrent), and real server processes for the paths that must cross HTTP."""

from __future__ import annotations

import asyncio
import logging
import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import AsyncIterator

import httpx
import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import make_settings
from tests.live import LiveServer, free_port, server_env

SECRET = "hs256-secret-for-tests-0123456789-abcdefghij"  # 44 bytes
ADMIN_TOKEN, SUPPORT_TOKEN, QA_TOKEN = "admin-secret", "support-secret-4b1d", "qa-secret-9e7c"
ISSUER, AUDIENCE = "https://login.carrier.example", "trialzone-app"
REDIS_URL = os.environ.get("TRIALZONE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def token(sub: str | None = "alice", *, key: object = SECRET, alg: str = "HS256", exp_in: float | None = 300,
          nbf_in: float | None = None, iss: str | None = ISSUER, aud: str | None = AUDIENCE,
          roles: list[str] | str | None = None, headers: dict | None = None, **claims) -> str:
    """A JWT as the carrier's login would issue it (every part overridable to forge a bad one)."""
    now = int(time.time())
    payload: dict = {"iat": now, **claims}
    if sub is not None:
        payload["sub"] = sub
    if exp_in is not None:
        payload["exp"] = now + exp_in
    if nbf_in is not None:
        payload["nbf"] = now + nbf_in
    if iss is not None:
        payload["iss"] = iss
    if aud is not None:
        payload["aud"] = aud
    if roles is not None:
        payload["roles"] = roles
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def hand_signed(payload: dict, key: bytes, header: dict | None = None) -> str:
    """An HS256 JWT built by hand, for what PyJWT refuses to sign (odd claims, a PEM as the key)."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def claims(sub: object = "alice", **extra) -> dict:
    return {"sub": sub, "exp": int(time.time()) + 300, "iss": ISSUER, "aud": AUDIENCE} | extra


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def security_settings(tmp_path: Path, **overrides) -> Settings:
    base = dict(jwt_hs256_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
                admin_token=ADMIN_TOKEN, support_token=SUPPORT_TOKEN, qa_token=QA_TOKEN)
    base.update(overrides)
    return make_settings(tmp_path, **base)


async def wait_ready(app: Litestar) -> None:
    deadline = time.monotonic() + 60
    while not app.state.registry.ready:
        assert time.monotonic() < deadline, "models did not warm up"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def in_process(settings: Settings, **kwargs) -> AsyncIterator[tuple[Litestar, AsyncTestClient]]:
    """The app through Litestar's test client: requests run one at a time."""
    app = create_app(settings, **kwargs)
    async with AsyncTestClient(app, timeout=60) as client:
        await wait_ready(app)
        yield app, client


@contextlib.asynccontextmanager
async def concurrent(settings: Settings, **kwargs) -> AsyncIterator[tuple[Litestar, httpx.AsyncClient]]:
    """The app on this event loop through httpx's ASGI transport: requests really overlap
    (Litestar's test client serialises them)."""
    app = create_app(settings, **kwargs)
    async with app.lifespan():
        await wait_ready(app)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4711))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as client:
            yield app, client


def start_server(tmp: Path, **env: str) -> LiveServer:
    base = {"TRIALZONE_MODELS": "u2netp", "TRIALZONE_JWT_HS256_SECRET": SECRET, "TRIALZONE_JWT_ISSUER": ISSUER,
            "TRIALZONE_JWT_AUDIENCE": AUDIENCE, "TRIALZONE_ADMIN_TOKEN": ADMIN_TOKEN,
            "TRIALZONE_SUPPORT_TOKEN": SUPPORT_TOKEN, "TRIALZONE_QA_TOKEN": QA_TOKEN}
    return LiveServer(server_env(tmp, **(base | env)), free_port(), tmp / "server.log").start()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def redis_available() -> bool:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


needs_redis = pytest.mark.skipif(not redis_available(), reason=f"no Redis at {REDIS_URL}")


class LogTrap(logging.Handler):
    """Every record, formatted with its traceback (Litestar's logging setup replaces the root
    handlers when an app starts, so pytest's caplog can miss them: attach this afterwards)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __enter__(self) -> "LogTrap":
        for name in ("", "app", "litestar", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx"):
            logger = logging.getLogger(name)
            logger.addHandler(self)
            if logger.level > logging.DEBUG or logger.level == logging.NOTSET:
                logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc) -> None:
        for name in ("", "app", "litestar", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx"):
            logging.getLogger(name).removeHandler(self)
