"""Standard Webhooks signatures (https://www.standardwebhooks.com), for vendor callbacks.

Signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; ``webhook-signature`` holds
space-separated ``v1,<base64 HMAC-SHA256>`` entries; secrets are ``whsec_<base64>``. Written
here in a few lines rather than taken from the ``standardwebhooks`` package because that one reads
the wall clock itself (tests need ``now``), checks a single secret (rotation needs several),
and raises non-verification errors on malformed headers or non-UTF-8 bodies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Mapping

from app.errors import DomainError

TOLERANCE = 300  # s either side of now; a callback replayed later than this is refused
PREFIX = "whsec_"


class BadSignature(DomainError):
    code = "bad_signature"
    status = 401
    title = "The callback's signature is missing, wrong or outside its time window"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional); ValueError if bad."""
    text = secret.removeprefix(PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("a callback secret must be whsec_ followed by base64") from None
    if len(key) < 16:
        raise ValueError("a callback secret must hold at least 16 bytes")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one secret: ``v1,<base64>``."""
    return "v1," + base64.b64encode(_digest(secret_key(secret), webhook_id, str(timestamp), body)).decode()


def verify(secrets: list[str], headers: Mapping[str, str], body: bytes, now: float) -> str:
    """The webhook id of a callback whose signature matches any of ``secrets`` within
    TOLERANCE of ``now``; otherwise BadSignature. Header names are matched case-insensitively."""
    lowered = {k.lower(): v for k, v in headers.items()}
    webhook_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    signature = lowered.get("webhook-signature", "")
    if not (webhook_id and timestamp and signature):
        raise BadSignature("webhook-id, webhook-timestamp and webhook-signature are required")
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise BadSignature("webhook-timestamp must be whole seconds since the epoch")
    if abs(now - int(timestamp)) > TOLERANCE:
        raise BadSignature(f"webhook-timestamp is more than {TOLERANCE} s from now")
    offered = []
    for entry in signature.split():
        version, _, value = entry.partition(",")
        if version == "v1":
            try:
                offered.append(base64.b64decode(value, validate=True))
            except binascii.Error:
                continue
    for secret in secrets:
        expected = _digest(secret_key(secret), webhook_id, timestamp, body)
        if any(hmac.compare_digest(expected, sig) for sig in offered):
            return webhook_id
    raise BadSignature("no signature matches a configured secret")


def _digest(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
