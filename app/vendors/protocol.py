"""The JSON both directions speak (docs/vendor-protocol.md): one set of Structs shared by our
client, our callback endpoint and the sandbox vendor, so the two sides cannot drift apart."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Status = Literal["pending", "succeeded", "failed"]


class TaskInput(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The photo: a signed, expiring URL the vendor fetches, or the bytes inline (base64)."""

    url: str | None = None
    data: str | None = None
    content_type: str | None = None


class TaskRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """POST /v1/tasks, sent with ``Idempotency-Key: <operation_id>``."""

    operation_id: str
    feature: str
    input: TaskInput | None = None  # None for features without a photo (pet-generate)
    params: dict[str, Any] = {}
    callback_url: str | None = None  # None: the vendor is polled


class TaskAck(msgspec.Struct, kw_only=True):
    """The vendor's answer to POST /v1/tasks: it has the task and will work on it."""

    task_id: str
    status: Status = "pending"


class TaskResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Exactly one of ``url`` (on an allowed host) or ``data`` (base64)."""

    content_type: str
    url: str | None = None
    data: str | None = None

    def __post_init__(self):
        if (self.url is None) == (self.data is None):
            raise ValueError("a result has exactly one of url or data")


class TaskError(msgspec.Struct, kw_only=True):
    code: str
    message: str = ""


class Callback(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The body the vendor POSTs to our callback URL, signed per Standard Webhooks."""

    operation_id: str
    task_id: str
    status: Literal["succeeded", "failed"]
    result: TaskResult | None = None
    error: TaskError | None = None

    def __post_init__(self):
        if self.status == "succeeded" and self.result is None:
            raise ValueError("a succeeded callback carries a result")


class TaskStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    """GET /v1/tasks/{task_id}: the same facts as a callback, for vendors that are polled."""

    task_id: str
    operation_id: str
    status: Status
    result: TaskResult | None = None
    error: TaskError | None = None

    def __post_init__(self):
        if self.status == "succeeded" and self.result is None:
            raise ValueError("a succeeded task carries a result")


class VendorErrorBody(msgspec.Struct, kw_only=True):
    """What a vendor answers with a 4xx or 5xx."""

    error: TaskError
