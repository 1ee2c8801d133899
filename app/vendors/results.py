"""Taking a vendor's result: fetched only from the vendor's own hosts, bounded in bytes and
time, and then checked as an image exactly like an upload, because a vendor's bytes are no more
trusted than a user's."""

from __future__ import annotations

import asyncio
import base64
import binascii

import anyio.to_thread
import httpx

from app.errors import DomainError
from app.imaging.decode import decode, open_image
from app.vendors.config import VendorConfig
from app.vendors.protocol import TaskResult

MAX_REDIRECTS = 3
RESULT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


class ResultRejected(DomainError):
    code = "vendor_result_rejected"
    status = 502
    title = "The partner vendor's result was refused"


async def fetch_result(url: str, *, allowed_hosts: list[str], max_bytes: int, timeout: float,
                       http: httpx.AsyncClient) -> bytes:
    """GET ``url`` (and redirects, only to allowed hosts), at most ``max_bytes`` within ``timeout`` s."""
    try:
        async with asyncio.timeout(timeout):
            for _ in range(MAX_REDIRECTS + 1):
                _check_url(url, allowed_hosts)
                async with http.stream("GET", url, headers={"Accept-Encoding": "identity"}, follow_redirects=False,
                                       timeout=timeout) as response:
                    if response.is_redirect:
                        url = str(response.url.join(response.headers.get("location", "")))
                        continue
                    if response.status_code != 200:
                        raise ResultRejected(f"the result URL answered HTTP {response.status_code}")
                    return await _read_capped(response, max_bytes)
            raise ResultRejected(f"the result URL redirected more than {MAX_REDIRECTS} times")
    except TimeoutError:
        raise ResultRejected(f"the result did not arrive within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise ResultRejected(f"the result could not be fetched: {type(exc).__name__}") from None


async def obtain_result(result: TaskResult, config: VendorConfig, *, http: httpx.AsyncClient,
                        max_pixels: int) -> tuple[bytes, str]:
    """A callback's or poll's result as (bytes, content type), the type read from the bytes
    themselves; ResultRejected when it is not a whole PNG, JPEG or WebP within the limits."""
    if result.data is not None:
        if len(result.data) > (config.max_result_bytes + 2) // 3 * 4:
            raise ResultRejected(f"the inline result is larger than {config.max_result_bytes:,} bytes")
        try:
            body = base64.b64decode(result.data, validate=True)
        except binascii.Error:
            raise ResultRejected("the inline result is not valid base64") from None
    else:
        body = await fetch_result(result.url, allowed_hosts=config.allowed_result_hosts,
                                  max_bytes=config.max_result_bytes, timeout=config.request_timeout, http=http)
    content_type = await anyio.to_thread.run_sync(_check_image, body, config.max_result_bytes, max_pixels)
    return body, content_type


def _check_url(url: str, allowed_hosts: list[str]) -> None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ResultRejected("the result URL is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise ResultRejected("the result URL must be http or https")
    if parsed.userinfo:
        raise ResultRejected("the result URL must not carry credentials")
    if parsed.host.lower() not in allowed_hosts:
        raise ResultRejected(f"the result host {parsed.host!r} is not one this vendor may use", host=parsed.host)


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResultRejected(f"the result is {int(declared):,} bytes; the limit is {max_bytes:,}")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():  # decoded bytes count, should a server compress anyway
        size += len(chunk)
        if size > max_bytes:
            raise ResultRejected(f"the result is larger than {max_bytes:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_image(body: bytes, max_bytes: int, max_pixels: int) -> str:
    try:
        image = open_image(body, max_bytes=max_bytes, max_pixels=max_pixels)
        content_type = RESULT_TYPES.get(image.format)
        decode(image)  # every pixel, so a truncated file is caught here and not by a user
    except DomainError as exc:
        raise ResultRejected(f"the result is not a usable image: {exc.detail}") from None
    if content_type is None:
        raise ResultRejected(f"the result is {image.format}; PNG, JPEG or WebP expected")
    return content_type
