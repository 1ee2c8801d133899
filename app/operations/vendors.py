"""Finishing partner operations: signed callbacks, and polling for partners without them.

Tokens stay held while the partner works. A good result is validated like any upload, stored,
then captured; a failure, a rejected result or the deadline releases the hold. Pending
operations live in the database, so after a restart the poller simply picks them up again and
callback operations keep waiting until their deadline (the reaper expires them).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Mapping

import httpx
import msgspec

from app.errors import InvalidRequest, NotFound
from app.operations.records import ACTIVE, Operation
from app.operations.service import OperationsService
from app.vendors import receipts
from app.vendors.client import VendorClient, VendorRejected, VendorUnavailable
from app.vendors.config import VendorConfig
from app.vendors.protocol import Callback, TaskStatus
from app.vendors.results import ResultRejected, obtain_result
from app.vendors.signatures import verify

log = logging.getLogger(__name__)


class VendorOperations:
    def __init__(self, service: OperationsService, vendors: dict[str, VendorConfig], http: httpx.AsyncClient,
                 max_pixels: int):
        self.service = service
        self.vendors = vendors
        self.http = http
        self.max_pixels = max_pixels
        self._next_poll: dict[str, tuple[int, float]] = {}  # op id -> (attempt, monotonic time)

    async def on_callback(self, vendor: str, headers: Mapping[str, str], body: bytes) -> str:
        """Verify, de-duplicate, then finish the operation. Returns what happened, for the ack."""
        config = self.vendors.get(vendor)
        if config is None:
            raise NotFound(f"no vendor named {vendor!r}")
        webhook_id = verify(config.callback_secrets, headers, body, self.service.clock().timestamp())
        try:
            callback = msgspec.json.decode(body, type=Callback)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidRequest(f"the callback body does not follow the protocol: {exc}") from None
        engine = self.service.records.engine
        if not await receipts.first_time(engine, f"vendor:{vendor}", webhook_id, self.service.clock()):
            return "duplicate"
        try:
            op = await self.service.records.get(callback.operation_id)
            if op is None or op.vendor != vendor:  # another vendor's operation is not this one's to settle
                raise NotFound("no such operation for this vendor")
            return await self._finish(op, config, callback)
        except NotFound:
            raise
        except Exception:
            await receipts.forget(engine, f"vendor:{vendor}", webhook_id)  # let the retry through
            raise

    async def _finish(self, op: Operation, config: VendorConfig, answer: Callback | TaskStatus) -> str:
        if op.status not in ACTIVE:  # e.g. a success after the deadline: recorded, never charged
            await self.service.note_late(op, answer.status)
            return "ignored"
        if answer.status == "failed":
            error = answer.error
            detail = f"{config.name}: {error.code}: {error.message}" if error else f"{config.name} failed"
            await self.service.fail(op, "vendor_failed", detail[:500])
            return "failed"
        try:
            body, content_type = await obtain_result(answer.result, config, http=self.http, max_pixels=self.max_pixels)
        except ResultRejected as exc:
            await self.service.fail(op, exc.code, exc.detail)
            return "rejected"
        return "accepted" if await self.service.complete(op, body, content_type, config.name) else "ignored"

    async def poll_forever(self, interval: float = 1.0) -> None:
        """Look at each polled partner's running operations, each on its own backoff schedule."""
        polled = [name for name, config in self.vendors.items() if config.mode == "poll"]
        if not polled:
            return
        while True:
            try:
                await self.poll_once(polled)
            except Exception:
                log.exception("vendor poll pass failed; retrying")
            await asyncio.sleep(interval)

    async def poll_once(self, polled: list[str]) -> None:
        loop = asyncio.get_running_loop()
        running = await self.service.records.active_with_vendor(polled)
        self._next_poll = {op.id: self._next_poll[op.id] for op in running if op.id in self._next_poll}
        for op in running:
            attempt, due = self._next_poll.get(op.id, (0, 0.0))
            if due > loop.time() or not op.vendor_task_id:
                continue
            config = self.vendors[op.vendor]
            self._next_poll[op.id] = (attempt + 1, loop.time() + config.poll_delay(attempt))
            try:
                status = await VendorClient(config, self.http).poll(op.vendor_task_id)
            except VendorUnavailable:
                continue  # keep trying until the deadline
            except VendorRejected as exc:  # the vendor lost the task
                await self.service.fail(op, exc.code, exc.detail)
                continue
            if status.status != "pending":
                await self._finish(op, config, status)
