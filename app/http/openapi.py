"""Make the generated OpenAPI document say what the API really answers.

Litestar documents a 400 with its own validation body and knows nothing of the problems every
handler can raise, of uploads read by hand, or of bytes answered as images. This pass, run once
on the built document (create_app), adds:

* ``Problem`` (RFC 9457, ``application/problem+json``, with the stable ``code``) as every
  operation's ``default`` response and as its 400;
* the upload form, the image answers and the 202 of ``POST /v1/operations/{feature}``, the image
  answer of ``GET /v1/operations/{id}/result``, and the text of ``GET /metrics``;
* the bearer security scheme on the endpoints that need a caller.

It is generic over the paths, so endpoints added later get the problem documentation too.
"""

from __future__ import annotations

from litestar.openapi.spec import (
    Components, OpenAPI, OpenAPIHeader, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Reference,
    RequestBody, Schema, SecurityScheme,
)

PROBLEM = "application/problem+json"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
USER_PATHS = ("/v1/operations", "/v1/me/", "/v1/orders")
STAFF_PATHS = ("/v1/admin/", "/v1/support/", "/v1/qa/")

_STRING = Schema(type=OpenAPIType.STRING)
_BINARY = Schema(type=OpenAPIType.STRING, content_media_type="application/octet-stream")  # bytes (OpenAPI 3.1)


def _problem_schema() -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        title="Problem",
        description="RFC 9457 problem details; `code` is stable and meant for programs, `detail` for people.",
        required=["type", "title", "status", "code"],
        properties={
            "type": _STRING, "title": _STRING, "detail": _STRING, "instance": _STRING,
            "status": Schema(type=OpenAPIType.INTEGER, minimum=400, maximum=599),
            "code": Schema(type=OpenAPIType.STRING, pattern="^[a-z][a-z0-9_]*$"),
        },
        additional_properties=True,
    )


def _problem_response(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={PROBLEM: OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Problem"))},
    )


def _image_content(*, json_ref: str | None = None) -> dict[str, OpenAPIMediaType]:
    content = {t: OpenAPIMediaType(schema=_BINARY) for t in ("image/png", "image/webp", "image/jpeg")}
    if json_ref:
        content["application/json"] = OpenAPIMediaType(schema=Reference(ref=json_ref))
    return content


def _upload_form() -> RequestBody:
    text = Schema(type=OpenAPIType.STRING, max_length=2000)
    return RequestBody(
        required=True,
        description="The photo in `image` and the feature's options as text fields (see the feature's description).",
        content={"multipart/form-data": OpenAPIMediaType(schema=Schema(
            type=OpenAPIType.OBJECT,
            properties={
                "image": _BINARY, "mask": _BINARY, "style_image": _BINARY,
                "model": text, "format": Schema(type=OpenAPIType.STRING, enum=["png", "webp"]),
                "mask_only": Schema(type=OpenAPIType.STRING, enum=["true", "false"]),
                "background": text, "size": text, "strokes": text, "boxes": text, "method": text,
                "dilate": Schema(type=OpenAPIType.STRING, enum=["true", "false"]),
                "style": text, "blend": text, "framing": text, "params": text,
            },
            additional_properties=text,
        ))},
    )


_OPERATION_HEADERS = {
    "X-Operation-Id": OpenAPIHeader(schema=_STRING, description="The operation's id"),
    "X-Tokens-Charged": OpenAPIHeader(schema=_STRING, description="Tokens this request cost"),
}


def _fix_operation_create(op: Operation, components: Components) -> None:
    view = "#/components/schemas/OperationView"
    has_view = "OperationView" in (components.schemas or {})
    op.request_body = _upload_form()
    op.responses = op.responses or {}
    op.responses["200"] = OpenAPIResponse(
        description="The result image (or the operation record with `Accept: application/json`)",
        content=_image_content(json_ref=view if has_view else None), headers=dict(_OPERATION_HEADERS),
    )
    if has_view:
        op.responses["202"] = OpenAPIResponse(
            description="Accepted: a partner works on it; follow `Location` (`GET /v1/operations/{id}`)",
            content={"application/json": OpenAPIMediaType(schema=Reference(ref=view))},
            headers=dict(_OPERATION_HEADERS),
        )


def _fix_result(op: Operation, components: Components) -> None:
    op.responses = op.responses or {}
    op.responses["200"] = OpenAPIResponse(description="The result image", content=_image_content())


def _fix_metrics(op: Operation, components: Components) -> None:
    op.responses = op.responses or {}
    op.responses["200"] = OpenAPIResponse(
        description="Prometheus metrics (text exposition format)",
        content={"text/plain": OpenAPIMediaType(schema=_STRING)},
    )


OVERRIDES = {
    ("post", "/v1/operations/{feature}"): _fix_operation_create,
    ("get", "/v1/operations/{operation_id}/result"): _fix_result,
    ("get", "/metrics"): _fix_metrics,
}


def document_errors(openapi: OpenAPI) -> OpenAPI:
    components = openapi.components = openapi.components or Components()
    components.schemas = components.schemas or {}
    components.schemas["Problem"] = _problem_schema()
    components.security_schemes = (components.security_schemes or {}) | {
        "bearer": SecurityScheme(
            type="http", scheme="bearer", bearer_format="JWT",
            description="App users: a JWT from the carrier's login (the user is `sub`). Staff: a staff "
                        "credential, or a JWT whose roles claim lists the role.",
        ),
    }
    for path, item in (openapi.paths or {}).items():
        for method in METHODS:
            op: Operation | None = getattr(item, method, None)
            if op is None:
                continue
            fix = OVERRIDES.get((method, path))
            if fix is not None:
                fix(op, components)
            op.responses = op.responses or {}
            op.responses["400"] = _problem_response("The request is malformed")
            op.responses["default"] = _problem_response("A problem: see `code` (e.g. unauthorized, not_found, "
                                                        "rate_limited, busy, insufficient_tokens)")
            if path.startswith(USER_PATHS) or (path.startswith("/v1/features/") and path.endswith("/quote")) \
                    or path.startswith(STAFF_PATHS):
                op.security = [{"bearer": []}]
    return openapi
