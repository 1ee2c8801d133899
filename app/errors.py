"""Domain errors. Each carries its stable ``code`` and HTTP status; the HTTP layer turns any
of them into an RFC 9457 problem in one place (app/http/problems.py), so no handler ever
builds an error body by hand."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"
    status = 400
    title = "Request failed"

    def __init__(self, detail: str = "", *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra


def _error(name: str, code: str, status: int, title: str) -> type[DomainError]:
    return type(name, (DomainError,), {"code": code, "status": status, "title": title})


# Input
InvalidRequest = _error("InvalidRequest", "invalid_request", 400, "The request is malformed")
EmptyBody = _error("EmptyBody", "empty_body", 400, "The request has no body")
DuplicateField = _error("DuplicateField", "duplicate_field", 400, "A form field is given more than once")
InvalidOption = _error("InvalidOption", "invalid_option", 422, "An option has an unsupported value")
MissingField = _error("MissingField", "missing_field", 422, "A required field is missing")
UnsupportedImage = _error("UnsupportedImage", "unsupported_image", 415, "The file is not an image we can read")
ImageTooLarge = _error("ImageTooLarge", "image_too_large", 413, "The image is too large")
NoSubjectFound = _error("NoSubjectFound", "no_subject_found", 422, "No clear subject was found in the photo")
UnknownFeature = _error("UnknownFeature", "unknown_feature", 404, "No such feature")
NotFound = _error("NotFound", "not_found", 404, "Not found")
ResultExpired = _error("ResultExpired", "result_expired", 410, "The result is no longer kept")

# Capacity and models
ModelUnavailable = _error("ModelUnavailable", "model_unavailable", 422, "That model is not installed here")
FeatureUnavailable = _error("FeatureUnavailable", "feature_unavailable", 503, "That feature is not available on this deployment")
Busy = _error("Busy", "busy", 503, "The service is busy, try again shortly")
InferenceFailed = _error("InferenceFailed", "inference_failed", 500, "The model failed on this photo")

# Money
InsufficientTokens = _error("InsufficientTokens", "insufficient_tokens", 402, "Not enough tokens")
IdempotencyKeyReused = _error("IdempotencyKeyReused", "idempotency_key_reused", 422, "That Idempotency-Key was used for a different request")
IdempotencyInFlight = _error("IdempotencyInFlight", "idempotency_in_flight", 409, "A request with that Idempotency-Key is still running")

# Who
Unauthorized = _error("Unauthorized", "unauthorized", 401, "Authentication required")
Forbidden = _error("Forbidden", "forbidden", 403, "Not allowed")

# Smart removal: the area to remove (app/imaging/areas.py)
AreaMissing = _error("AreaMissing", "area_missing", 422, "Say what to remove: a mask, strokes or boxes")
AreaConflict = _error("AreaConflict", "area_conflict", 422, "Give only one of mask, strokes or boxes")
InvalidMask = _error("InvalidMask", "invalid_mask", 422, "The mask is not an image we can read")
InvalidStrokes = _error("InvalidStrokes", "invalid_strokes", 422, "The strokes are not valid")
InvalidBoxes = _error("InvalidBoxes", "invalid_boxes", 422, "The boxes are not valid")
AreaEmpty = _error("AreaEmpty", "area_empty", 422, "The area to remove is empty")
AreaTooLarge = _error("AreaTooLarge", "area_too_large", 422, "The area to remove covers too much of the photo")

# Abuse limits (app/http/limits.py)
RateLimited = _error("RateLimited", "rate_limited", 429, "Too many requests; slow down")
RequestTimeout = _error("RequestTimeout", "request_timeout", 408, "The request did not arrive in time")
ProcessingTimeout = _error("ProcessingTimeout", "processing_timeout", 503, "The request took too long to answer")

# Token packages on the phone bill (app/billing, docs/billing.md)
IdempotencyKeyRequired = _error("IdempotencyKeyRequired", "idempotency_key_required", 400, "This request needs an Idempotency-Key header")
UnknownPackage = _error("UnknownPackage", "unknown_package", 404, "No such package on sale")
NotRenewable = _error("NotRenewable", "not_renewable", 409, "That order does not renew")
OrderNotRefundable = _error("OrderNotRefundable", "order_not_refundable", 409, "That order is not paid, so it cannot be refunded")
BillingRejected = _error("BillingRejected", "billing_rejected", 502, "The carrier's billing system refused the request")
BillingUnavailable = _error("BillingUnavailable", "billing_unavailable", 503, "The carrier's billing system is unavailable")
