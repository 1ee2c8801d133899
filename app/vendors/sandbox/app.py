"""The sandbox vendor's HTTP side: exactly the protocol of docs/vendor-protocol.md, plus the
misbehaviours a real partner may show, chosen per task with ``params["sandbox"]``.

Tasks live in memory: the sandbox stands in for someone else's service, and a restart of it is
a partner losing its work, which our side must survive anyway.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import anyio.to_thread
import httpx
import msgspec
from litestar import Litestar, Request, Response, get, post

from app.errors import DomainError
from app.vendors.protocol import Callback, TaskAck, TaskError, TaskRequest, TaskResult, TaskStatus, VendorErrorBody
from app.vendors.sandbox.work import FEATURES, MAX_BYTES, Worker
from app.vendors.signatures import secret_key, sign

log = logging.getLogger("sandbox")

DEV_SECRET = "whsec_c2FuZGJveC1kZXZlbG9wbWVudC1zZWNyZXQ="  # base64("sandbox-development-secret")
WRONG_SECRET = "whsec_bm90LXRoZS1zZWNyZXQteW91LWNvbmZpZ3VyZWQ="  # signs `bad_signature` callbacks
STALE_BY = 360  # s: a `stale` callback is signed this long ago, past the 300 s window


class Behaviour(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``params["sandbox"]``: how this one task should go."""

    behaviour: Literal["succeed", "fail", "slow", "twice", "bad_signature", "stale", "never", "reject",
                       "flaky"] = "succeed"
    delay: float | None = None  # s before the answer; `slow` defaults to 5
    result: Literal["inline", "url"] = "inline"
    fail_first: int = 2  # `flaky`: answer 503 to this many attempts first
    secret: str | None = None  # sign with this instead of the sandbox's secret (rotation tests)


class SandboxSettings(msgspec.Struct, kw_only=True):
    api_key: str = "sandbox-key"
    secret: str = DEV_SECRET
    public_url: str = "http://127.0.0.1:8010"  # where result URLs point
    models_dir: str = "./models"
    callback_attempts: int = 3

    def __post_init__(self):
        secret_key(self.secret)  # a bad --secret fails at start, not at the first callback


@dataclass
class Task:
    request: TaskRequest
    behaviour: Behaviour
    status: TaskStatus


class Sandbox:
    def __init__(self, settings: SandboxSettings):
        self.settings = settings
        self.worker = Worker(settings.models_dir)
        self.tasks: dict[str, Task] = {}
        self.by_key: dict[str, str] = {}
        self.attempts: Counter[str] = Counter()
        self.results: dict[str, tuple[bytes, str]] = {}
        self.running: set[asyncio.Task] = set()
        self.http = httpx.AsyncClient(timeout=10)

    def authorised(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.settings.api_key}".encode())

    async def create(self, key: str, body: TaskRequest) -> Response:
        if key in self.by_key:  # the same operation again: the same task
            return _json(TaskAck(task_id=self.by_key[key], status=self.tasks[self.by_key[key]].status.status), 200)
        try:
            behaviour = msgspec.convert(body.params.get("sandbox", {}), Behaviour)
        except msgspec.ValidationError as exc:
            return _error(400, "invalid_sandbox_params", str(exc))
        params = {k: v for k, v in body.params.items() if k != "sandbox"}
        if behaviour.behaviour == "reject":
            return _error(422, "rejected", "the sandbox was told to reject this task")
        if behaviour.behaviour == "flaky":
            self.attempts[key] += 1
            if self.attempts[key] <= behaviour.fail_first:
                return _error(503, "flaky", f"attempt {self.attempts[key]} fails, as the sandbox was told")
        if body.feature not in FEATURES:
            return _error(422, "unsupported_feature", f"the sandbox does not do {body.feature!r}")
        if FEATURES[body.feature] and (body.input is None or (body.input.url or body.input.data) is None):
            return _error(422, "missing_input", f"{body.feature} needs input.url or input.data")
        try:
            self.worker.check(body.feature, params)
        except DomainError as exc:
            return _error(422, exc.code, exc.detail)
        task_id = "task_" + secrets.token_hex(12)
        task = Task(request=msgspec.structs.replace(body, params=params), behaviour=behaviour,
                    status=TaskStatus(task_id=task_id, operation_id=body.operation_id, status="pending"))
        self.tasks[task_id] = task
        self.by_key[key] = task_id
        job = asyncio.create_task(self.work(task))
        self.running.add(job)
        job.add_done_callback(self.running.discard)
        return _json(TaskAck(task_id=task_id), 202)

    async def work(self, task: Task) -> None:
        how = task.behaviour
        status = task.status
        try:  # like a real partner: fetch the photo on receipt (its link expires), then work
            photo, fetch_error = await self.input_bytes(task.request), None
        except Exception as exc:
            photo, fetch_error = None, exc
        await asyncio.sleep(how.delay if how.delay is not None else (5.0 if how.behaviour == "slow" else 0.0))
        if how.behaviour == "never":
            return
        if how.behaviour == "fail":
            status.status, status.error = "failed", TaskError(code="sandbox_failure",
                                                              message="the sandbox was told to fail this task")
        elif fetch_error is not None:
            status.status, status.error = "failed", TaskError(code="input_unavailable",
                                                              message=type(fetch_error).__name__)
        else:
            try:
                body, content_type = await anyio.to_thread.run_sync(
                    self.worker.run, task.request.feature, photo, task.request.params)
                status.result = self.publish(body, content_type, how.result)
                status.status = "succeeded"
            except DomainError as exc:
                status.status, status.error = "failed", TaskError(code=exc.code, message=exc.detail)
            except Exception as exc:  # a vendor reports its own crash as a failure, it does not vanish
                log.exception("task %s failed", status.task_id)
                status.status, status.error = "failed", TaskError(code="processing_failed", message=type(exc).__name__)
        if task.request.callback_url:
            await self.call_back(task)

    async def input_bytes(self, request: TaskRequest) -> bytes | None:
        if request.input is None:
            return None
        if request.input.data is not None:
            return base64.b64decode(request.input.data)
        response = await self.http.get(request.input.url, follow_redirects=True)
        response.raise_for_status()
        if len(response.content) > MAX_BYTES:
            raise ValueError("the input is too large")
        return response.content

    def publish(self, body: bytes, content_type: str, how: str) -> TaskResult:
        if how == "inline":
            return TaskResult(content_type=content_type, data=base64.b64encode(body).decode())
        result_id = secrets.token_urlsafe(16)  # unguessable: the URL itself is the credential
        self.results[result_id] = (body, content_type)
        return TaskResult(content_type=content_type, url=f"{self.settings.public_url}/v1/results/{result_id}")

    async def call_back(self, task: Task) -> None:
        """Deliver the signed callback, retrying on failure as a partner would; ``twice`` delivers
        it a second time with the same webhook-id, as a partner's retry after a lost answer does."""
        status, how = task.status, task.behaviour
        body = msgspec.json.encode(Callback(operation_id=status.operation_id, task_id=status.task_id,
                                            status=status.status, result=status.result, error=status.error))
        webhook_id = "msg_" + secrets.token_hex(12)
        secret = WRONG_SECRET if how.behaviour == "bad_signature" else (how.secret or self.settings.secret)
        for _ in range(2 if how.behaviour == "twice" else 1):
            for attempt in range(self.settings.callback_attempts):
                timestamp = int(time.time()) - (STALE_BY if how.behaviour == "stale" else 0)
                headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
                           "webhook-signature": sign(secret, webhook_id, timestamp, body),
                           "content-type": "application/json"}
                try:
                    response = await self.http.post(task.request.callback_url, content=body, headers=headers)
                    if response.is_success:
                        break
                    log.warning("callback for %s answered HTTP %s", status.task_id, response.status_code)
                except httpx.HTTPError as exc:
                    log.warning("callback for %s failed: %s", status.task_id, exc)
                await asyncio.sleep(0.5 * 2 ** attempt)


def create_sandbox(settings: SandboxSettings) -> Litestar:
    sandbox = Sandbox(settings)

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @post("/v1/tasks")
    async def create_task(request: Request) -> Response:
        if not sandbox.authorised(request):
            return _error(401, "unauthorized", "send Authorization: Bearer <api key>")
        try:
            body = msgspec.json.decode(await request.body(), type=TaskRequest)
        except msgspec.DecodeError as exc:
            return _error(400, "invalid_request", str(exc))
        return await sandbox.create(request.headers.get("idempotency-key") or body.operation_id, body)

    @get("/v1/tasks/{task_id:str}")
    async def get_task(request: Request, task_id: str) -> Response:
        if not sandbox.authorised(request):
            return _error(401, "unauthorized", "send Authorization: Bearer <api key>")
        task = sandbox.tasks.get(task_id)
        return _json(task.status, 200) if task else _error(404, "not_found", "no such task")

    @get("/v1/results/{result_id:str}")
    async def get_result(result_id: str) -> Response:
        if result_id not in sandbox.results:
            return _error(404, "not_found", "no such result")
        body, content_type = sandbox.results[result_id]
        return Response(body, media_type=content_type)

    async def close() -> None:
        for job in list(sandbox.running):
            job.cancel()
        await sandbox.http.aclose()

    app = Litestar([healthz, create_task, get_task, get_result], on_shutdown=[close], openapi_config=None)
    app.state.sandbox = sandbox
    return app


def _json(value: msgspec.Struct, status: int) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(VendorErrorBody(error=TaskError(code=code, message=message)), status)
