"""The one path every operation takes:

    prepare (validate; nothing held) -> idempotency check -> record -> ledger.reserve
        -> runner.run -> store result -> ledger.capture -> record succeeded
    any failure after the reserve -> ledger.release -> record failed (no charge)

The result is written to the blob store before the tokens are captured, so a charge always has
a result behind it; a crash anywhere leaves a hold that the reaper settles at its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import datetime, timedelta
from typing import Callable

import anyio.to_thread
import msgspec
from sqlalchemy.exc import IntegrityError

from app.errors import (
    DomainError, FeatureUnavailable, IdempotencyInFlight, IdempotencyKeyReused, InferenceFailed, InsufficientTokens,
    ResultExpired,
)
from app.features.catalogue import Catalogue
from app.ledger.errors import HoldNotActive
from app.ledger.service import Ledger
from app.metrics import OPERATION_SECONDS, OPERATIONS
from app.operations.records import ACTIVE, Operation, OperationRecords
from app.runners.base import Form, Prepared, Runner
from app.storage import BlobMissing, BlobStore

log = logging.getLogger(__name__)

EXTENSIONS = {"image/png": "png", "image/webp": "webp", "image/jpeg": "jpg"}


def _result_key(op: Operation, content_type: str) -> str:
    return f"results/{op.user_id}/{op.id}.{EXTENSIONS.get(content_type, 'bin')}"


def new_operation_id() -> str:
    """32 hex characters, time-ordered (milliseconds first) so ids sort by creation."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


class Outcome(msgspec.Struct, kw_only=True):
    operation: Operation
    body: bytes
    tokens_remaining: int | None
    replayed: bool = False
    accepted: bool = False  # 202: a partner works on it; follow GET /v1/operations/{id}


class OperationsService:
    def __init__(self, *, records: OperationRecords, ledger: Ledger, store: BlobStore, catalogue: Catalogue,
                 runners: dict[str, Runner], clock: Callable[[], datetime], hold_seconds: int,
                 result_url_seconds: int = 900):
        self.records = records
        self.ledger = ledger
        self.store = store
        self.catalogue = catalogue
        self.runners = runners
        self.clock = clock
        self.hold_seconds = hold_seconds
        self.result_url_seconds = result_url_seconds
        self._settling: set[asyncio.Task] = set()

    def runner_for(self, feature) -> Runner:
        runner = self.runners.get(feature.runner)
        if runner is None or not runner.available(feature):
            raise FeatureUnavailable(f"{feature.title} is not available on this deployment", feature=feature.name)
        return runner

    async def submit(self, user_id: str, feature_name: str, form: Form, idempotency_key: str | None) -> Outcome:
        started = time.perf_counter()
        feature = self.catalogue.get(feature_name)
        runner = self.runner_for(feature)
        # Bad input fails here, before anything is recorded or held (in a thread: a removal mask
        # is decoded and rasterised here).
        prepared = await anyio.to_thread.run_sync(runner.prepare, form, feature)

        if idempotency_key:
            earlier = await self._earlier(user_id, idempotency_key, prepared)
            if earlier is not None:
                return earlier
        try:
            op = await self._record(user_id, feature, prepared, idempotency_key, runner)
        except IntegrityError:  # a concurrent request with the same key won the race
            earlier = await self._earlier(user_id, idempotency_key, prepared)
            if earlier is None:
                raise IdempotencyInFlight("a request with this Idempotency-Key is still running") from None
            return earlier

        try:
            hold = await self.ledger.reserve(
                user_id, feature.price, operation_id=op.id, feature=feature.name,
                deadline=op.deadline,
            )
        except InsufficientTokens as exc:
            exc.extra["packages"] = [msgspec.to_builtins(p) for p in self.catalogue.visible_packages()]
            await self.records.update(op.id, status="failed", error_code=exc.code, error_detail=exc.detail,
                                      finished_at=self.clock())
            OPERATIONS.labels(feature.name, prepared.model or "", "insufficient_tokens").inc()
            raise

        try:
            # Keys are recorded before their objects are written: retention and the reaper then
            # know every object that may exist.
            input_key = f"inputs/{user_id}/{op.id}" if prepared.input_bytes is not None else None
            # Where the options fix the result's type, its key is recorded now too: one round trip
            # less between the result and the answer.
            result_key = _result_key(op, prepared.result_type) if prepared.result_type else None
            await self.records.update(op.id, status="running", hold_id=hold.id, tokens_held=feature.price,
                                      started_at=self.clock(), input_key=input_key, result_key=result_key,
                                      result_content_type=prepared.result_type)
            if input_key:
                await self.store.put(input_key, prepared.input_bytes, prepared.input_type or "application/octet-stream")
            if runner.asynchronous:  # a partner works on it and answers later (callback or poll)
                ack = await runner.dispatch(feature, op.id, prepared, input_key)
                await self.records.update(op.id, vendor=feature.vendor, vendor_task_id=ack.task_id)
                return Outcome(operation=await self.records.get(op.id), body=b"", tokens_remaining=None,
                               accepted=True)
            result = await runner.run(prepared)
            await self._store_result(op, result.body, result.content_type, result.model, recorded=result_key)
            captured = await self.ledger.capture(hold.id)
        except BaseException as exc:
            await self._settle_failure(op, hold.id, exc)
            OPERATIONS.labels(feature.name, prepared.model or "", "failed").inc()
            if isinstance(exc, DomainError) or not isinstance(exc, Exception):
                raise
            log.exception("operation %s failed", op.id)
            raise InferenceFailed("the operation failed; no tokens were charged", operation_id=op.id) from None

        done = await self.records.updated(op.id, status="succeeded", tokens_charged=feature.price,
                                          finished_at=self.clock(),
                                          result_meta=result.meta | {"tokens_remaining": captured.available})
        OPERATIONS.labels(feature.name, result.model or "", "succeeded").inc()
        OPERATION_SECONDS.labels(feature.name, result.model or "").observe(time.perf_counter() - started)
        return Outcome(operation=done, body=result.body, tokens_remaining=captured.available)

    async def _store_result(self, op: Operation, body: bytes, content_type: str, model: str | None,
                            recorded: str | None = None) -> None:
        """Written before any capture: a charge always has its result behind it. Its key is recorded
        before it is written, unless it was (``recorded``) when the operation started."""
        result_key = _result_key(op, content_type)
        if result_key != recorded or model != op.model:
            await self.records.update(op.id, result_key=result_key, result_content_type=content_type, model=model)
        await self.store.put(result_key, body, content_type)

    async def complete(self, op: Operation, body: bytes, content_type: str, model: str | None) -> bool:
        """A partner's result arrived: store it, then capture. False when the operation had
        already finished (expired, failed): the result is recorded and nothing is charged."""
        if op.status not in ACTIVE:
            await self.note_late(op, "succeeded")
            return False
        await self._store_result(op, body, content_type, model)
        try:
            await self.ledger.capture(op.hold_id)
        except HoldNotActive:  # the reaper released it at the deadline a moment ago
            await self.note_late(op, "succeeded")
            return False
        settled = await self.records.settle(op.id, status="succeeded", tokens_charged=op.tokens_held,
                                            finished_at=self.clock())
        OPERATIONS.labels(op.feature, model or "", "succeeded").inc()
        return settled

    async def note_late(self, op: Operation, answer: str) -> None:
        """A partner answered after the operation finished: kept on the record, never charged."""
        await self.records.update(op.id, result_meta=(op.result_meta or {}) | {"late_answer": answer})

    async def fail(self, op: Operation, code: str, detail: str) -> bool:
        """A partner failed or sent something unusable: release, no charge."""
        if op.status not in ACTIVE:
            return False
        try:
            await self.ledger.release(op.hold_id, reason=code)
        except HoldNotActive:  # already captured by a racing success: that outcome stands
            return False
        OPERATIONS.labels(op.feature, op.model or "", "failed").inc()
        return await self.records.settle(op.id, status="failed", error_code=code, error_detail=detail,
                                         finished_at=self.clock())

    async def _earlier(self, user_id: str, key: str, prepared: Prepared) -> Outcome | None:
        """Replay a finished request with this key, refuse a different one, 409 while in flight."""
        op = await self.records.by_key(user_id, key)
        if op is None:
            return None
        if op.request_hash != prepared.request_hash:
            raise IdempotencyKeyReused("this Idempotency-Key was first used for a different request",
                                       operation_id=op.id)
        if op.status in ACTIVE and not op.vendor:
            raise IdempotencyInFlight("a request with this Idempotency-Key is still running",
                                      operation_id=op.id, headers={"Retry-After": "1"})
        if op.status == "succeeded" or (op.status in ACTIVE and op.vendor):
            body = await self.result_bytes(op) if op.status == "succeeded" else b""
            remaining = (op.result_meta or {}).get("tokens_remaining")
            return Outcome(operation=op, body=body, tokens_remaining=remaining, replayed=True,
                           accepted=op.status != "succeeded")
        await self.records.forget_key(op.id)  # failed: it cost nothing, so a retry runs again
        return None

    async def _record(self, user_id: str, feature, prepared: Prepared, key: str | None, runner: Runner) -> Operation:
        now = self.clock()
        seconds = runner.deadline_seconds(feature) if runner.asynchronous else self.hold_seconds
        return await self.records.insert(
            id=new_operation_id(), user_id=user_id, feature=feature.name, runner=feature.runner, model=prepared.model,
            options=prepared.options, status="pending", idempotency_key=key,
            request_hash=prepared.request_hash, created_at=now,
            deadline=now + timedelta(seconds=seconds), vendor=feature.vendor if runner.asynchronous else None,
        )

    async def _settle_failure(self, op: Operation, hold_id: str, exc: BaseException) -> None:
        """Release the hold and mark the operation failed, even if this task is being cancelled."""
        code = exc.code if isinstance(exc, DomainError) else ("cancelled" if isinstance(exc, asyncio.CancelledError)
                                                              else "inference_failed")
        detail = exc.detail if isinstance(exc, DomainError) else type(exc).__name__

        async def settle() -> None:
            await self.ledger.release(hold_id, reason=code)
            await self.records.update(op.id, status="failed", error_code=code, error_detail=detail,
                                      finished_at=self.clock())

        task = asyncio.ensure_future(settle())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        await asyncio.shield(task)

    async def result_bytes(self, op: Operation) -> bytes:
        """The stored result; 410 result_expired once retention removed it."""
        try:
            return await self.store.get(op.result_key)
        except BlobMissing:
            raise ResultExpired("the result was deleted under the retention policy") from None

    async def result_url(self, op: Operation) -> str | None:
        """A signed, expiring link to the result of a succeeded operation."""
        if op.status != "succeeded" or not op.result_key:
            return None
        return await self.store.url(op.result_key, self.result_url_seconds)

    async def reap(self) -> int:
        """Settle operations past their deadline: capture if the result was stored (the process
        died between storing and capturing), else release (a partner's operation expires). Then
        let the ledger release any hold left without an operation, and expire grants."""
        settled = 0
        for op in await self.records.overdue(self.clock()):
            if op.hold_id and op.result_key and await self._stored(op.result_key):
                with contextlib.suppress(HoldNotActive):
                    await self.ledger.capture(op.hold_id)
                settled += await self.records.settle(op.id, status="succeeded", tokens_charged=op.tokens_held,
                                                     finished_at=self.clock())
                continue
            if op.hold_id:
                with contextlib.suppress(HoldNotActive):
                    await self.ledger.release(op.hold_id, reason="deadline")
            status, code = ("expired", "vendor_timeout") if op.vendor else ("failed", "deadline")
            settled += await self.records.settle(op.id, status=status, error_code=code,
                                                 error_detail="the operation did not finish before its deadline",
                                                 finished_at=self.clock())
        await self.ledger.reap()
        await self.ledger.expire_due()
        return settled

    async def _stored(self, key: str) -> bool:
        try:
            await self.store.get(key)
            return True
        except BlobMissing:
            return False
