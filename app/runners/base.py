"""What every runner shares: the form it receives, what ``prepare`` hands to ``run``, and the
result it gives back."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import msgspec
from PIL import Image

from app.errors import InvalidOption, MissingField, UnsupportedImage
from app.imaging.decode import open_image
from app.settings import Settings


class Upload(msgspec.Struct, frozen=True):
    filename: str
    content_type: str
    data: bytes


Form = dict[str, "str | Upload"]


class Prepared(msgspec.Struct, kw_only=True):
    """A validated request, ready to run: nothing in it can fail for a reason the client caused
    except what only decoding every pixel reveals."""

    model: str | None
    options: dict[str, Any]
    request_hash: str
    payload: Any = None  # runner-private (the opened image, parsed areas, ...)
    input_bytes: bytes | None = None
    input_type: str | None = None
    result_type: str | None = None  # the result's content type, where the options fix it before the run


class Result(msgspec.Struct, kw_only=True):
    body: bytes
    content_type: str
    model: str | None
    meta: dict[str, Any] = {}


class Runner(Protocol):
    asynchronous: bool  # True: ``dispatch`` hands the work to a partner, who answers later

    def available(self, feature) -> bool: ...

    def models(self, feature) -> list[str]:
        """The model names a client may pick from (empty where there is no choice)."""

    def prepare(self, form: Form, feature) -> Prepared: ...

    async def run(self, prepared: Prepared) -> Result: ...


def parse_options(form: Form, schema: type[msgspec.Struct], skip: tuple[str, ...]) -> msgspec.Struct:
    """Text fields of the form -> the runner's options Struct; unknown or bad values are 422."""
    raw = {}
    for key, value in form.items():
        if key in skip:
            continue
        if isinstance(value, Upload):
            raise InvalidOption(f"field {key!r} must be text, not a file", field=key)
        raw[key] = value
    try:
        return msgspec.convert(raw, schema, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidOption(str(exc)) from None


def require_image(form: Form, settings: Settings, field: str = "image") -> tuple[Upload, Image.Image]:
    """The uploaded photo, identified and size-checked from its header (no pixels decoded)."""
    upload = form.get(field)
    if upload is None:
        raise MissingField(f"the multipart field {field!r} (the photo) is missing", field=field)
    if not isinstance(upload, Upload):
        raise UnsupportedImage(f"the field {field!r} must be a file upload", field=field)
    return upload, open_image(upload.data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)


def request_hash(feature: str, options: dict[str, Any], *blobs: bytes) -> str:
    """Fingerprint of a request, so an Idempotency-Key reused for another request is caught."""
    digest = hashlib.sha256(feature.encode())
    digest.update(msgspec.json.encode(options, order="sorted"))
    for blob in blobs:
        digest.update(hashlib.sha256(blob).digest())
    return digest.hexdigest()
