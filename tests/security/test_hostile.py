"""The hostile corpus (tests/security/hostile_corpus.py) through a real server: each bad input is a
4xx problem with its stable code, costs nothing, leaves the service healthy and leaks no stack
trace or path; each odd-but-valid input runs (200) and carries no smuggled payload. Then header
injection, at the wire and in process."""

from __future__ import annotations

import re
import socket

import httpx
import pytest

from tests.security.conftest import ADMIN_TOKEN, bearer, concurrent, security_settings, start_server, token, unique
from tests.security.hostile_corpus import BY_NAME, CORPUS, WIRE_INJECTIONS

PRICES = {"cutout": 31_000, "removal": 40_000, "pet-avatar": 60_000}
LEAK = re.compile(r"Traceback|File \"|/work/|/home/|/usr/|site-packages|\.py\b|sqlalchemy|aiosqlite|asyncpg|"
                  r"onnxruntime|PIL\.|msgspec\.|litestar\.", re.I)


def test_the_corpus_is_big_enough():
    bad = [c for c in CORPUS if c.status >= 400]
    assert len(bad) >= 40 and len(CORPUS) >= 60
    for kind in ("truncated jpeg", "truncated png", "truncated webp", "truncated heic", "png declaring 50k x 50k",
                 "1x1 png", "1x40000 png", "cmyk jpeg", "16-bit greyscale png", "palette png with transparency",
                 "animated gif", "animated webp", "svg renamed .jpg", "pdf renamed .png", "jpeg+zip polyglot",
                 "zero-byte file", "huge multipart part", "json instead of a form", "missing image",
                 "image field twice", "grant non-utf-8 json", "grant oversized json", "removal strokes 300 kB",
                 "idempotency key non-ascii"):
        assert kind in BY_NAME, kind


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = start_server(tmp_path_factory.mktemp("hostile"), TRIALZONE_MODELS="u2netp,multistyle26")
    yield live
    live.stop()


def balance(server, user: str) -> int:
    return httpx.get(f"{server.url}/v1/me/balance", headers=bearer(token(user))).json()["available"]


def assert_no_leak(text: str) -> None:
    match = LEAK.search(text)
    assert match is None, f"leaks {match.group(0)!r}: {text[:300]}"


@pytest.mark.parametrize("name", list(BY_NAME))
def test_hostile_input(server, name):
    case = BY_NAME[name]
    user = unique("hostile")
    subject = "someone" if case.staff else user  # whose tokens the request could touch
    before = balance(server, subject)
    headers = (bearer(ADMIN_TOKEN) if case.staff else bearer(token(user))) | case.headers
    kwargs = {k: v for k, v in (("files", case.files), ("data", case.data), ("content", case.content)) if v is not None}
    response = httpx.request(case.method, server.url + case.target(), headers=headers, timeout=120, **kwargs)

    if case.status == 200:
        assert response.status_code == 200, response.text[:500]
        assert response.headers["content-type"] == "image/png"
        assert int(response.headers["x-tokens-charged"]) == PRICES[case.feature]
        if case.payload_marker:
            assert case.payload_marker not in response.content
    else:
        assert response.status_code == case.status, response.text[:500]
        assert response.headers["content-type"].startswith("application/problem+json"), response.headers
        problem = response.json()
        assert problem["code"] == case.code and problem["status"] == case.status, problem
        assert problem["detail"] and problem["title"]
        assert_no_leak(response.text)
        assert balance(server, subject) == before  # costs nothing
        ops = httpx.get(f"{server.url}/v1/operations", headers=bearer(token(user))).json()["items"]
        assert all(o["tokens_charged"] == 0 and o["status"] != "succeeded" for o in ops), ops
    assert httpx.get(f"{server.url}/healthz").status_code == 200


@pytest.mark.parametrize("name", list(WIRE_INJECTIONS))
def test_header_injection_at_the_wire_is_refused_by_the_http_parser(server, name):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(WIRE_INJECTIONS[name](token(unique("wire"))))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    responses = answer.split(b"HTTP/1.1 ")[1:]
    assert responses and responses[0].startswith(b"400 "), answer[:300]
    assert not any(r.startswith(b"2") for r in responses)  # nothing smuggled through
    assert_no_leak(answer.decode("latin-1"))
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_the_server_logged_no_unhandled_error(server):
    """Runs after the corpus: nothing it sent reached the 500 path."""
    log = server.log_path.read_text(errors="replace")
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]
    assert " 500 " not in log


INJECTED = {
    "user id with CR LF": ({"X-User-Id": b"alice\r\nX-Admin: yes"}, 401, "unauthorized"),
    "user id with NUL": ({"X-User-Id": b"alice\x00admin"}, 401, "unauthorized"),
    "user id in UTF-8": ({"X-User-Id": "алиса".encode()}, 401, "unauthorized"),
    "bearer with CR LF": ({"Authorization": b"Bearer abc.def.ghi\r\nX-Admin: yes"}, 401, "unauthorized"),
    "idempotency key with CR LF": ({"X-User-Id": b"alice", "Idempotency-Key": b"k\r\nSet-Cookie: admin=1"},
                                   400, "invalid_request"),
    "idempotency key with LF": ({"X-User-Id": b"alice", "Idempotency-Key": b"k\nLocation: https://evil"},
                                400, "invalid_request"),
}


async def test_header_injection_in_process(tmp_path):
    """Values a lenient proxy might pass through reach the app raw: each is refused, and nothing
    of them comes back in a response header."""
    from tests.security.hostile_corpus import jpeg

    async with concurrent(security_settings(tmp_path)) as (_, client):
        for name, (headers, status, code) in INJECTED.items():
            response = await client.post("/v1/operations/cutout", headers=headers,
                                         files={"image": ("p.jpg", jpeg(), "image/jpeg")})
            assert response.status_code == status, (name, response.text)
            assert response.json()["code"] == code, name
            for key, value in response.headers.raw:
                assert key.lower() not in (b"x-admin", b"set-cookie", b"location"), name
                assert b"\r" not in value and b"\n" not in value
        assert (await client.get("/v1/me/balance", headers={"X-User-Id": "alice"})).json()["available"] == 500_000
