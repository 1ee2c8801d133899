"""HMAC-signed, expiring links for blobs the app serves itself (the local folder store).

A link is ``/v1/blobs/{key}?expires=EPOCH&sig=HMAC``: the signature covers the key and the
expiry, so neither can be changed, and a copied link stops working when it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlencode

from app.errors import Forbidden, NotFound
from app.storage.base import LinkExpired

_DOMAIN = b"trialzone-blob-link-v1\n"  # a signature made for anything else never matches


def _digest(key: str, expires_at: int, secret: str | bytes) -> str:
    secret = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(secret, _DOMAIN + f"{expires_at}\n{key}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign(key: str, expires_at: int, secret: str | bytes) -> str:
    """The query string (``expires=..&sig=..``) that grants ``key`` until ``expires_at`` (epoch seconds)."""
    return urlencode({"expires": expires_at, "sig": _digest(key, expires_at, secret)})


def verify(key: str, expires: int, signature: str, secret: str | bytes, now: float) -> None:
    """Raise ``Forbidden`` unless ``signature`` was made for this key and expiry, then
    ``LinkExpired`` once ``now`` has reached the expiry (a forged expiry is never 'expired')."""
    if not hmac.compare_digest(_digest(key, expires, secret).encode(), signature.encode()):
        raise Forbidden("the link's signature is not valid")
    if now >= expires:
        raise LinkExpired("the link has expired; ask for the operation again for a fresh one")


def verify_blob_request(store_or_secret: object, key: str, expires: str | int | None, sig: str | None,
                        now: float) -> None:
    """Check the query of a ``GET /v1/blobs/{key}`` request. ``store_or_secret`` is the app's
    store (only the local store signs links; any other means no such route: ``NotFound``)
    or the secret itself."""
    secret = getattr(store_or_secret, "signing_secret", store_or_secret)
    if not isinstance(secret, (str, bytes)):
        raise NotFound("this deployment serves no blobs itself")
    try:
        expires_at = int(expires)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Forbidden("the link has no valid expiry") from None
    if not sig or not sig.isascii():
        raise Forbidden("the link is not signed")
    verify(key, expires_at, sig, secret, now)


def load_or_create_secret(path: Path) -> bytes:
    """The secret kept in ``path``, made on first use. Two processes racing to make it agree:
    the file appears whole (hard link of a finished temporary file) and the first one wins."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()
