"""Delegation to a partner vendor: validate here, hand the task over, answer 202.

Any feature can be routed to a vendor in configuration (runner = "vendor", vendor = NAME);
pet generation from a description is vendor-only. The partner answers later through a signed
callback or is polled (app/operations/vendors.py finishes the operation then).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import msgspec

from app.errors import InvalidOption
from app.runners.base import Form, Prepared, Upload, request_hash, require_image
from app.settings import Settings
from app.storage import BlobStore
from app.vendors.client import VendorClient
from app.vendors.config import VendorConfig
from app.vendors.protocol import TaskAck

FIELD = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_FIELDS = 32
MAX_TEXT = 2000


class VendorRunner:
    asynchronous = True

    def __init__(self, vendors: dict[str, VendorConfig], store: BlobStore, http: httpx.AsyncClient,
                 settings: Settings):
        self.vendors = vendors
        self.store = store
        self.settings = settings
        self.clients = {name: VendorClient(config, http) for name, config in vendors.items()}

    def available(self, feature) -> bool:
        config = self.vendors.get(feature.vendor or "")
        return config is not None and (not config.features or feature.name in config.features)

    def models(self, feature) -> list[str]:
        return []

    def deadline_seconds(self, feature) -> float:
        return self.vendors[feature.vendor].deadline

    def prepare(self, form: Form, feature) -> Prepared:
        """Text fields become the task's params (bounded); ``params`` may carry a JSON object."""
        params: dict[str, Any] = {}
        for key, value in form.items():
            if key == "image":
                continue
            if isinstance(value, Upload) or not FIELD.match(key) or len(value) > MAX_TEXT:
                raise InvalidOption(f"field {key!r}: vendor options are short text fields", field=key)
            if key == "params":
                try:
                    extra = msgspec.json.decode(value, type=dict[str, Any])
                except msgspec.DecodeError:
                    raise InvalidOption("params must be a JSON object", field=key) from None
                params.update(extra)
            else:
                params[key] = value
        if len(params) > MAX_FIELDS:
            raise InvalidOption(f"at most {MAX_FIELDS} options")
        upload = None
        if feature.needs_image or "image" in form:
            upload, _ = require_image(form, self.settings)
        blobs = [upload.data] if upload else []
        return Prepared(
            model=feature.vendor, options=params, request_hash=request_hash(feature.name, params, *blobs),
            input_bytes=upload.data if upload else None, input_type=upload.content_type if upload else None,
        )

    async def dispatch(self, feature, operation_id: str, prepared: Prepared, input_key: str | None) -> TaskAck:
        """POST the task with the input as a signed expiring link, and our callback URL."""
        config = self.vendors[feature.vendor]
        input_url = None
        if input_key:
            input_url = await self.store.url(input_key, int(config.deadline) + 60)
            if input_url.startswith("/"):
                input_url = self.settings.public_url.rstrip("/") + input_url
        callback_url = None
        if config.mode == "callback":
            callback_url = f"{self.settings.public_url.rstrip('/')}/v1/vendors/{config.name}/callbacks"
        return await self.clients[config.name].dispatch(
            operation_id=operation_id, feature=feature.vendor_task or feature.name, input_url=input_url, input_bytes=None,
            params=prepared.options, callback_url=callback_url, input_type=prepared.input_type,
        )
