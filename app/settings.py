"""Settings: one msgspec Struct, filled from TRIALZONE_* environment variables.

Every field is documented in the README's configuration table; the field name upper-cased
with the TRIALZONE_ prefix is its variable (``database_url`` -> ``TRIALZONE_DATABASE_URL``).
"""

from __future__ import annotations

import os
from typing import Literal, Mapping

import msgspec

PREFIX = "TRIALZONE_"


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    database_url: str = "sqlite+aiosqlite:///./var/trialzone.db"
    database_pool_size: int = 32  # PostgreSQL connections per process: the concurrency it expects
    models_dir: str = "./models"
    provider: Literal["auto", "cpu", "cuda"] = "auto"
    storage_url: str = "file://./var/blobs"
    dev_user_header: str | None = None
    admin_token: str | None = None
    welcome_gift_tokens: int = 500_000
    monthly_trial_tokens: int = 0
    timezone: str = "Asia/Shanghai"
    features_file: str | None = None

    # Images
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    preview_pixels: int = 250_000
    removal_max_area_share: float = 0.5  # a removal area over this share of the photo is refused

    # Inference
    models: str = ""  # comma-separated names to load; empty = every installed model a feature uses
    warmup: bool = True
    inference_threads: int = 0  # ONNX Runtime intra-op threads per session; 0 = one per core
    inference_workers: int = 0  # concurrent session.run calls per model; 0 = 2 (on CPU with a one-thread twin)
    queue_size: int = 16  # requests waiting per model before 503 busy
    busy_retry_after: int = 2

    # Partners
    public_url: str = "http://127.0.0.1:8000"  # how partners reach us: callbacks, input links

    # Billing (docs/billing.md): token packages charged to the phone bill
    billing_url: str | None = None  # the carrier billing system; unset = no orders (503 billing_unavailable)
    billing_api_key: str | None = None  # Bearer credential we send to billing
    billing_callback_secrets: str = ""  # comma-separated whsec_... secrets billing signs callbacks with

    # Ledger
    migrate_on_start: bool = True
    hold_seconds: int = 300  # a hold's deadline after it is taken
    reaper_interval: float = 15.0

    # Storage
    s3_endpoint_url: str | None = None  # S3-compatible stores (MinIO, Ceph, OSS); unset = AWS
    s3_region: str | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"  # MinIO/Ceph usually need "path"
    s3_sse: str | None = None  # ServerSideEncryption on every put: AES256 or aws:kms
    s3_kms_key_id: str | None = None  # with aws:kms; unset = the bucket's default key
    signing_secret: str | None = None  # HMAC key of local blob links; unset = var/signing.key next to the store
    result_url_seconds: int = 900  # lifetime of a result link
    input_retention_hours: int = 24
    result_retention_days: int = 7

    # Auth and limits (docs/security.md)
    support_token: str | None = None  # staff bearer credential of the support role; unset = role off
    qa_token: str | None = None  # staff bearer credential of the qa role; unset = role off
    jwt_hs256_secret: str | None = None  # app users' JWTs signed HS256 with this secret
    jwt_public_key_file: str | None = None  # PEM public key(s)/certificate(s) or a JWKS JSON file (RS/ES/EdDSA)
    jwt_issuer: str | None = None  # required `iss` when set
    jwt_audience: str | None = None  # required `aud` when set (comma-separated: any of them)
    jwt_roles_claim: str = "roles"  # JWT claim listing staff roles (admin, support, qa); sub names the operator
    jwt_leeway_seconds: int = 30  # clock skew allowed on exp and nbf
    redis_url: str | None = None  # shared store of rate limits and per-user counters; unset = in process
    redis_namespace: str = "trialzone"  # key prefix in Redis
    rate_limit_per_minute: int = 300  # requests per user (per client IP when anonymous); 0 = off
    user_operations_in_flight: int = 4  # concurrent POST /v1/operations/* per user before 429; 0 = off
    uploads_in_flight: int = 32  # concurrent POST /v1/operations/* per process before 503 busy; 0 = off
    request_timeout_seconds: float = 120.0  # until the response starts: 408 (body late) or 503; 0 = off

    # Performance (docs/performance.md)
    inference_spinning: bool = False  # ORT intra-op threads spin-wait between ops: burns cores others need
    inference_mem_arena: bool = True  # ORT's CPU memory arena: faster runs; fixed input sizes keep it bounded
    inference_mem_pattern: bool = False  # ORT's memory-pattern planning: ~200 MB more per session, no faster here
    batching: Literal["auto", "on", "off"] = "auto"  # one session.run for concurrent requests; auto = CUDA only
    batch_max_size: int = 8  # requests per batched session.run at most
    batch_max_wait_ms: float = 3.0  # how long a request waits for others to share its batch

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        """Read every TRIALZONE_* variable; ``overrides`` win (tests use them)."""
        environ = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for name in cls.__struct_fields__:
            value = environ.get(PREFIX + name.upper())
            if value is not None and value != "":
                raw[name] = value
        raw.update(overrides)
        return msgspec.convert(raw, cls, strict=False)

    def replace(self, **changes: object) -> "Settings":
        return msgspec.structs.replace(self, **changes)


def env_table() -> list[tuple[str, str]]:
    """(variable, default) pairs, for the README table and `python -m app settings`."""
    defaults = Settings()
    return [(PREFIX + n.upper(), repr(getattr(defaults, n))) for n in Settings.__struct_fields__]
