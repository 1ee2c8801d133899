"""Every error leaves as an RFC 9457 problem (application/problem+json) with a stable ``code``.

Domain errors carry their own code and status; Litestar's HTTP exceptions are given codes here;
anything unexpected becomes a 500 ``internal_error`` with no stack trace in the body.
"""

from __future__ import annotations

import logging

from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException, ProblemDetailsPlugin

from app.errors import DomainError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "image_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def _problem(status: int, code: str, title: str, detail: str, headers=None, extra=None) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status, title=title, detail=detail, headers=headers,
        type_=f"https://trialzone.example/problems/{code}", extra={"code": code, **(extra or {})},
    )


def from_domain(exc: DomainError) -> ProblemDetailsException:
    return _problem(exc.status, exc.code, exc.title, exc.detail, exc.headers, exc.extra)


def from_http(exc: HTTPException) -> ProblemDetailsException:
    status = exc.status_code
    code = HTTP_CODES.get(status, "internal_error" if status >= 500 else "invalid_request")
    detail = exc.detail
    if isinstance(exc, ValidationException):
        code = "invalid_request"
    if isinstance(exc, NotFoundException):
        detail = "no such resource"
    if status == 413:
        detail = "the request body is larger than the upload limit"
    if status >= 500:
        detail = "the service hit an unexpected error"
    return _problem(status, code, exc.__class__.__name__.removesuffix("Exception") or "Error", detail, exc.headers)


def from_unexpected(exc: Exception) -> ProblemDetailsException:
    log.error("unhandled error", exc_info=exc)
    return _problem(500, "internal_error", "Internal error", "the service hit an unexpected error")


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(ProblemDetailsConfig(exception_to_problem_detail_map={
        DomainError: from_domain,
        HTTPException: from_http,
        Exception: from_unexpected,
    }))
