"""Partners' doors: vendor callbacks (Standard Webhooks signatures are their only credential)."""

from __future__ import annotations

from litestar import Request, post

from app.operations.vendors import VendorOperations

MAX_CALLBACK_BYTES = 40 * 1024 * 1024  # an inline base64 result of up to 20 MB, and then some


@post("/v1/vendors/{vendor:str}/callbacks", summary="A partner vendor reports a task's outcome",
      tags=["partners"], status_code=200, request_max_body_size=MAX_CALLBACK_BYTES)
async def vendor_callback(request: Request, vendor: str) -> dict:
    """Bad or missing signature: 401 and nothing changes. A repeated webhook-id: 200, ignored."""
    flow: VendorOperations = request.app.state.vendor_operations
    outcome = await flow.on_callback(vendor, request.headers, await request.body())
    return {"status": outcome}
