"""Shared fixtures: settings on a temporary SQLite database and blob folder, the app in process,
and a real uvicorn server process for the tests whose path crosses HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings

from tests.live import MODELS, ROOT, LiveServer, free_port, server_env

PG_URL = os.environ.get("TRIALZONE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def make_settings(tmp_path: Path, **overrides) -> Settings:
    base = dict(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/trialzone.db",
        storage_url=f"file://{tmp_path}/blobs",
        models_dir=MODELS,
        models="u2netp",
        provider="cpu",
        dev_user_header="X-User-Id",
        admin_token="admin-secret",
        reaper_interval=3600,
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def client(settings):
    app = create_app(settings)
    async with AsyncTestClient(app, timeout=60) as c:
        while not app.state.registry.ready:
            await _sleep(0.05)
        yield c


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    server = LiveServer(server_env(tmp), free_port(), tmp / "server.log").start()
    yield server
    server.stop()
