"""create_app(settings): wiring only. ``app`` is the ASGI application uvicorn serves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import AsyncIterator, Callable

import anyio.to_thread
import httpx
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.static_files import create_static_files_router

from app.billing import Orders, build_orders
from app.db import create_engine, dispose, upgrade_async
from app.features.catalogue import Catalogue
from app.http.auth import Authenticator
from app.http.catalogue import CatalogueController
from app.http.health import healthz, readyz
from app.http.ledger import AdminController, MeController
from app.http.limits import GuardedRequest, Limits
from app.http.operations import OperationsController, blob
from app.http.orders import OrdersController, billing_callback, refund_order
from app.http.qa import QAController, SupportController, TestUserResolver, qa_page, support_page
from app.http.openapi import document_errors
from app.http.problems import problem_details_plugin
from app.http.vendors import vendor_callback
from app.inference.registry import ModelRegistry
from app.ledger.service import Ledger
from app.operations.records import OperationRecords
from app.operations.service import OperationsService
from app.operations.vendors import VendorOperations
from app.runners import build_runners
from app.settings import Settings
from app.storage import create_store
from app.storage.retention import purge
from app.vendors.config import load_vendors

log = logging.getLogger("app")
ASSETS = Path(__file__).resolve().parent.parent / "assets"


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] = utc_now) -> Litestar:
    settings = settings or Settings.from_env()
    registry = ModelRegistry(settings)
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    catalogue = Catalogue.load(settings.features_file)
    ledger = Ledger(
        engine, clock=clock, welcome_gift_tokens=settings.welcome_gift_tokens,
        monthly_trial_tokens=settings.monthly_trial_tokens, timezone=settings.timezone,
        feature_titles=catalogue.titles(),
    )
    store = create_store(settings)
    vendors = load_vendors(settings.features_file)
    http = httpx.AsyncClient(headers={"User-Agent": "trialzone/1"})
    service = OperationsService(
        records=OperationRecords(engine), ledger=ledger, store=store, catalogue=catalogue,
        runners=build_runners(registry, settings, vendors=vendors, store=store, http=http), clock=clock,
        hold_seconds=settings.hold_seconds, result_url_seconds=settings.result_url_seconds,
    )
    vendor_operations = VendorOperations(service, vendors, http, settings.max_pixels)
    orders = build_orders(settings, engine=engine, ledger=ledger, catalogue=catalogue, http=http, clock=clock)
    authenticator = Authenticator(settings)  # a bad key file fails here, at startup
    limits = Limits(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.dev_user_header:
            log.warning("DEVELOPMENT ONLY: the user id is taken from the %s header, unauthenticated; "
                        "never run a deployment with TRIALZONE_DEV_USER_HEADER set", settings.dev_user_header)
        if settings.migrate_on_start:
            await upgrade_async(engine)
        await anyio.to_thread.run_sync(registry.load)
        background = [asyncio.create_task(_housekeep_forever(service, settings, orders)),
                      asyncio.create_task(vendor_operations.poll_forever())]
        if settings.warmup:
            background.append(asyncio.create_task(anyio.to_thread.run_sync(registry.warm_up)))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            registry.close()
            await http.aclose()
            await dispose(engine)

    app = Litestar(
        route_handlers=[healthz, readyz, OperationsController, blob, vendor_callback, CatalogueController, MeController,
                        AdminController, OrdersController, billing_callback, refund_order, PrometheusController,
                        QAController, SupportController, qa_page, support_page,
                        create_static_files_router(path="/assets", directories=[ASSETS], include_in_schema=False)],
        dependencies={"service": Provide(lambda: service, sync_to_thread=False)},
        lifespan=[lifespan],
        plugins=[problem_details_plugin()],
        middleware=[PrometheusConfig(app_name="trialzone", group_path=True).middleware, TestUserResolver(),
                    *limits.middleware],
        stores=limits.stores,
        on_shutdown=[limits.close],
        request_class=GuardedRequest,
        openapi_config=OpenAPIConfig(title="Trial zone API", version="1", path="/schema"),
        request_max_body_size=settings.max_upload_bytes + 1024 * 1024,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.service = service
    app.state.vendor_operations = vendor_operations
    app.state.orders = orders
    app.state.authenticator = authenticator
    app.state.limits = limits
    document_errors(app.openapi_schema)
    return app


async def housekeep(service: OperationsService, settings: Settings, orders: Orders | None = None) -> None:
    """One pass: settle holds past their deadline (crashes, lost vendors), expire grants, renew
    monthly packages at a carrier month's start, and delete inputs and results past their retention."""
    await service.reap()
    if orders is not None:
        await orders.renew_due()
    await purge(service.store, service.records.engine, service.clock(),
                settings.input_retention_hours, settings.result_retention_days)


async def _housekeep_forever(service: OperationsService, settings: Settings, orders: Orders) -> None:
    while True:
        try:
            await housekeep(service, settings, orders)
        except Exception:
            log.exception("housekeeping pass failed; retrying next interval")
        await asyncio.sleep(settings.reaper_interval)


def __getattr__(name: str):
    """``app.main:app`` is built on first access, so importing this module stays cheap."""
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
