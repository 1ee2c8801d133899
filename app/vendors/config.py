"""Who the partner vendors are: ``[vendors.NAME]`` tables in TRIALZONE_FEATURES_FILE, beside the
features they serve. None is configured by default.

    [features.pet-generate]
    runner = "vendor"
    vendor = "sandbox"

    [vendors.sandbox]
    base_url = "http://127.0.0.1:8010"
    api_key = "env:SANDBOX_API_KEY"          # "env:NAME" reads the variable NAME
    features = ["pet-generate"]
    mode = "callback"                        # or "poll"
    callback_secrets = ["env:SANDBOX_SECRET"] # several while a secret is rotated
    allowed_result_hosts = ["127.0.0.1"]

Credentials may be written as ``env:NAME`` so the file itself holds no secret.
"""

from __future__ import annotations

import os
import random
import tomllib
from pathlib import Path
from typing import Literal

import msgspec

from app.vendors.signatures import secret_key


class VendorConfigError(ValueError):
    """The vendors' configuration is unusable; the message names the vendor and the field."""


class VendorConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    base_url: str
    api_key: str  # sent as ``Authorization: Bearer``
    features: list[str] = []
    request_timeout: float = 10.0  # s, one HTTP request
    deadline: float = 300.0  # s, a whole operation: past it, it expires and nothing is charged
    mode: Literal["callback", "poll"] = "callback"
    callback_secrets: list[str] = []  # whsec_<base64>; any of them verifies a callback
    allowed_result_hosts: list[str] = []  # exact host names a result URL may point at
    max_result_bytes: int = 20 * 1024 * 1024
    poll_interval: float = 2.0  # s, the first wait between polls; it doubles up to poll_max_interval
    poll_max_interval: float = 30.0

    def __post_init__(self):
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        self.base_url = self.base_url.rstrip("/")
        self.allowed_result_hosts = [h.lower() for h in self.allowed_result_hosts]
        if self.mode == "callback" and not self.callback_secrets:
            raise ValueError("a callback vendor needs at least one callback_secrets entry")
        for secret in self.callback_secrets:
            secret_key(secret)  # ValueError when not whsec_<base64>
        if min(self.request_timeout, self.deadline, self.poll_interval) <= 0 or self.max_result_bytes <= 0:
            raise ValueError("timeouts, deadline, poll_interval and max_result_bytes must be positive")

    def poll_delay(self, attempt: int) -> float:
        """Seconds before poll number ``attempt`` (0-based): exponential, capped, with jitter so
        many pending tasks do not poll in step."""
        delay = min(self.poll_interval * 2 ** min(attempt, 30), self.poll_max_interval)
        return delay * random.uniform(0.8, 1.2)


def load_vendors(path: str | None) -> dict[str, VendorConfig]:
    if not path:
        return {}
    tables = tomllib.loads(Path(path).read_text()).get("vendors", {})
    vendors = {}
    for name, entry in tables.items():
        try:
            entry = {k: _expand(v) for k, v in entry.items()}
            vendors[name] = msgspec.convert({"name": name, **entry}, VendorConfig)
        except (msgspec.ValidationError, ValueError) as exc:
            raise VendorConfigError(f"[vendors.{name}] in {path}: {exc}") from None
    return vendors


def _expand(value):
    """``env:NAME`` -> the variable's value, in strings and lists of strings."""
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, str) and value.startswith("env:"):
        variable = value[4:]
        if variable not in os.environ:
            raise ValueError(f"the environment variable {variable} is not set")
        return os.environ[variable]
    return value
