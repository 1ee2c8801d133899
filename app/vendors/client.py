"""Our side of the outbound protocol: hand a task to a vendor, ask how it is going.

Dispatch retries what may be transient (timeouts, connection errors, 429 and 5xx) with
exponential backoff and jitter, a bounded number of times; it is safe to repeat because the
operation id travels as the ``Idempotency-Key``, so the vendor keeps one task per operation.
A 4xx is the vendor's considered refusal and is not retried.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
from tenacity import (
    AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_exponential_jitter,
)

from app.errors import DomainError
from app.vendors.config import VendorConfig
from app.vendors.protocol import TaskAck, TaskInput, TaskRequest, TaskStatus, VendorErrorBody


class VendorRejected(DomainError):
    """The vendor refused the task (4xx) or answered something that is not the protocol."""

    code = "vendor_rejected"
    status = 502
    title = "The partner vendor refused the task"


class VendorUnavailable(DomainError):
    """The vendor could not be reached, timed out or kept failing (5xx) through every retry."""

    code = "vendor_unavailable"
    status = 503
    title = "The partner vendor is unavailable"


class _Transient(Exception):
    """A response worth retrying (429, 5xx)."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


TRANSIENT = (httpx.TimeoutException, httpx.TransportError, _Transient)


class VendorClient:
    def __init__(self, config: VendorConfig, http: httpx.AsyncClient, *, attempts: int = 4,
                 backoff: float = 0.5, max_backoff: float = 5.0):
        self.config = config
        self.http = http
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.headers = {"Authorization": f"Bearer {config.api_key}"}

    async def dispatch(self, *, operation_id: str, feature: str, input_url: str | None, input_bytes: bytes | None,
                       params: dict[str, Any], callback_url: str | None,
                       input_type: str | None = None) -> TaskAck:
        """POST the task; VendorRejected on a 4xx, VendorUnavailable once retries run out."""
        task_input = None
        if input_url is not None:
            task_input = TaskInput(url=input_url, content_type=input_type)
        elif input_bytes is not None:
            task_input = TaskInput(data=base64.b64encode(input_bytes).decode(), content_type=input_type)
        body = msgspec.json.encode(TaskRequest(operation_id=operation_id, feature=feature, input=task_input,
                                               params=params, callback_url=callback_url))
        headers = self.headers | {"Idempotency-Key": operation_id, "Content-Type": "application/json"}
        response = await self._with_retries("POST", "/v1/tasks", content=body, headers=headers)
        return _decode(response, TaskAck)

    async def poll(self, task_id: str) -> TaskStatus:
        """One look at a task (no retries: the poller calls again after its own backoff)."""
        response = await self._with_retries("GET", f"/v1/tasks/{quote(task_id, safe='')}",
                                            headers=self.headers, attempts=1)
        return _decode(response, TaskStatus)

    async def _with_retries(self, method: str, path: str, *, attempts: int | None = None, **kwargs) -> httpx.Response:
        # Retrying stops well inside the operation's deadline, whatever the attempt count.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts or self.attempts) | stop_after_delay(self.config.deadline / 4),
            wait=wait_exponential_jitter(initial=self.backoff, max=self.max_backoff, jitter=self.backoff),
            retry=retry_if_exception_type(TRANSIENT),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send(method, path, **kwargs)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            reason = f"HTTP {last.response.status_code}" if isinstance(last, _Transient) else type(last).__name__
            raise VendorUnavailable(
                f"{self.config.name} did not answer after {exc.last_attempt.attempt_number} attempt(s): {reason}",
                vendor=self.config.name,
            ) from None

    async def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = await self.http.request(method, self.config.base_url + path, timeout=self.config.request_timeout,
                                           follow_redirects=False, **kwargs)
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(response)
        if response.status_code >= 300:
            raise VendorRejected(f"{self.config.name} answered HTTP {response.status_code}: {_message(response)}",
                                 vendor=self.config.name, vendor_status=response.status_code)
        return response


def _decode(response: httpx.Response, schema):
    try:
        return msgspec.json.decode(response.content, type=schema)
    except msgspec.DecodeError as exc:
        raise VendorRejected(f"the vendor's answer is not a valid {schema.__name__}: {exc}") from None


def _message(response: httpx.Response) -> str:
    """The vendor's own error message when it follows the protocol, else the start of the body."""
    try:
        error = msgspec.json.decode(response.content, type=VendorErrorBody).error
        return f"{error.code}: {error.message}"[:500]
    except msgspec.DecodeError:
        return response.text[:200] or "(no body)"
