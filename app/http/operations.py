"""Operation endpoints: run a feature, read records, fetch results."""

from __future__ import annotations

import mimetypes
import re
from datetime import datetime
from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from app.errors import InvalidRequest, NotFound, ResultExpired
from app.http.auth import current_user
from app.http.forms import read_form
from app.http.views import OperationPage, OperationView
from app.operations.service import OperationsService, Outcome
from app.storage import BlobMissing
from app.storage.signing import verify_blob_request

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def _headers(outcome: Outcome) -> dict[str, str]:
    op = outcome.operation
    headers = {"X-Operation-Id": op.id, "X-Tokens-Charged": str(op.tokens_charged)}
    if outcome.tokens_remaining is not None:
        headers["X-Tokens-Remaining"] = str(outcome.tokens_remaining)
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return headers


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "image/" not in accept


class OperationsController(Controller):
    path = "/v1/operations"
    tags = ["operations"]

    @post(
        "/{feature:str}",
        summary="Run a feature on a photo",
        description=(
            "multipart/form-data with the photo in `image` plus the feature's options (cutout: `model`, "
            "`format` png|webp, `mask_only`, `background` #rrggbb, `size` full|preview). Answers the result "
            "image, or the operation record with `Accept: application/json`. Costs the feature's price in "
            "tokens, once per `Idempotency-Key`; a failure costs nothing."
        ),
        status_code=200,
        request_max_body_size=None,
    )
    async def create(
        self,
        request: Request,
        service: OperationsService,
        feature: str,
        idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key", required=False)] = None,
    ) -> Response:
        user = current_user(request)
        service.catalogue.get(feature)  # unknown feature: 404 before reading the upload
        if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
            raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
        form = await read_form(request)
        outcome = await service.submit(user, feature, form, idempotency_key)
        if outcome.accepted:  # a partner works on it: follow the record
            headers = _headers(outcome) | {"Location": f"/v1/operations/{outcome.operation.id}"}
            return Response(await _view(service, request, outcome.operation), status_code=202, headers=headers)
        if _wants_json(request):
            return Response(await _view(service, request, outcome.operation), headers=_headers(outcome))
        return Response(outcome.body, media_type=outcome.operation.result_content_type, headers=_headers(outcome))

    @get("/", summary="The caller's operations, newest first")
    async def list_operations(
        self,
        request: Request,
        service: OperationsService,
        feature: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
        before: datetime | None = None,
    ) -> OperationPage:
        user = current_user(request)
        ops = await service.records.list(user, feature=feature, status=status, limit=limit, before=before)
        return OperationPage(items=[await _view(service, request, o) for o in ops],
                             next_before=ops[-1].created_at if len(ops) == limit else None)

    @get("/{operation_id:str}", summary="One operation's record")
    async def get_operation(self, request: Request, service: OperationsService, operation_id: str) -> OperationView:
        return await _view(service, request, await _own(service, request, operation_id))

    @get("/{operation_id:str}/result", summary="The result bytes of a succeeded operation")
    async def get_result(self, request: Request, service: OperationsService, operation_id: str) -> Response[bytes]:
        op = await _own(service, request, operation_id)
        if op.status != "succeeded":
            raise NotFound(f"operation {op.id} has no result (status {op.status})")
        body = await service.result_bytes(op)
        return Response(body, media_type=op.result_content_type, headers={"X-Operation-Id": op.id})


async def _view(service: OperationsService, request: Request, op) -> OperationView:
    url = await service.result_url(op)
    if url and url.startswith("/"):  # the app serves it (local store): make it absolute
        url = str(request.base_url).rstrip("/") + url
    return OperationView.of(op, url)


async def _own(service: OperationsService, request: Request, operation_id: str):
    """Another user's operation is 404, exactly like one that does not exist."""
    op = await service.records.get(operation_id, current_user(request))
    if op is None:
        raise NotFound("no such operation")
    return op


@get("/v1/blobs/{key:path}", summary="A stored object, through a signed expiring link", tags=["operations"],
     include_in_schema=False)
async def blob(request: Request, service: OperationsService, key: str, expires: str | None = None,
               sig: str | None = None) -> Response[bytes]:
    """Links from the local folder store land here; the signature is the only credential."""
    key = key.lstrip("/")
    verify_blob_request(service.store, key, expires, sig, service.clock().timestamp())
    try:
        body = await service.store.get(key)
    except BlobMissing:
        raise ResultExpired("the object was deleted under the retention policy") from None
    media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return Response(body, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})
