"""Response bodies (msgspec Structs, so the OpenAPI schema is exact)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from app.operations.records import Operation


class OperationView(msgspec.Struct, kw_only=True):
    id: str
    feature: str
    status: str
    runner: str
    model: str | None
    options: dict[str, Any]
    tokens_held: int
    tokens_charged: int
    error_code: str | None
    error_detail: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result_url: str | None
    result_content_type: str | None

    @classmethod
    def of(cls, op: Operation, result_url: str | None = None) -> "OperationView":
        return cls(
            id=op.id, feature=op.feature, status=op.status, runner=op.runner, model=op.model, options=op.options,
            tokens_held=op.tokens_held, tokens_charged=op.tokens_charged, error_code=op.error_code,
            error_detail=op.error_detail, created_at=op.created_at, started_at=op.started_at,
            finished_at=op.finished_at,
            result_url=result_url,
            result_content_type=op.result_content_type if op.status == "succeeded" else None,
        )


class OperationPage(msgspec.Struct):
    items: list[OperationView]
    next_before: datetime | None


class FeatureView(msgspec.Struct, kw_only=True):
    name: str
    title: str
    description: str
    price: int
    runner: str
    model: str | None
    models: list[str]
    available: bool


class Health(msgspec.Struct):
    status: str
    models: dict[str, str] = {}
