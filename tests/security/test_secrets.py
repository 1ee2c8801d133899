"""Secrets never appear in logs, error bodies, response headers or the OpenAPI document: configure
distinctive ones, exercise the error paths (bad and forged tokens, wrong staff credentials, rate
limits, a broken Redis), and grep everything that came out, in process and from a real server."""

from __future__ import annotations

import base64

import httpx
import jwt
import pytest

from tests.security.conftest import LogTrap, bearer, in_process, security_settings, start_server, unique

SECRETS = {
    "jwt_hs256_secret": "JWTSECRET-f3a9c0d14e7b4c62a8e2-5b0d9e7f",
    "admin_token": "ADMINTOKEN-9b1c77e2d0aa",
    "support_token": "SUPPORTTOKEN-31f0c9e8b7",
    "qa_token": "QATOKEN-5d2e8a61c4f0",
    "signing_secret": "SIGNINGSECRET-0c7e1f92ab",
    "billing_api_key": "BILLINGKEY-77aa10c2e9",
}
REDIS_PASSWORD = "REDISPASSWORD-4e9d21b0"


def needles() -> list[str]:
    """Each secret, and its base64 form (a secret pasted into a header or a dump)."""
    found = []
    for value in [*SECRETS.values(), REDIS_PASSWORD]:
        found += [value, base64.b64encode(value.encode()).decode().rstrip("=")]
    return found


def assert_clean(text: str, where: str) -> None:
    for needle in needles():
        assert needle not in text, f"a secret ({needle[:12]}...) appears in {where}"


def user_token(sub: str, **claims) -> str:
    import time

    payload = {"sub": sub, "exp": int(time.time()) + 300, "iss": "https://login.carrier.example",
               "aud": "trialzone-app"} | claims
    return jwt.encode(payload, SECRETS["jwt_hs256_secret"], algorithm="HS256")


async def exercise(client) -> list[str]:
    """Hit the error paths; return every response as text (status, headers, body)."""
    user = unique("alice")
    good = bearer(user_token(user))
    calls = [
        ("GET", "/v1/me/balance", good),
        ("GET", "/v1/me/balance", bearer(user_token(user, exp=1))),
        ("GET", "/v1/me/balance", bearer(jwt.encode({"sub": user}, "wrong-secret-0123456789-abcdefghijkl"))),
        ("GET", "/v1/me/balance", bearer(jwt.encode({"sub": user, "exp": 2**31}, None, algorithm="none"))),
        ("GET", "/v1/me/balance", bearer(SECRETS["admin_token"])),  # a staff token on a user endpoint
        ("GET", "/v1/me/balance", {"Authorization": "Basic " + base64.b64encode(b"admin:pw").decode()}),
        ("GET", f"/v1/admin/users/{user}/ledger", bearer(SECRETS["support_token"])),
        ("GET", f"/v1/admin/users/{user}/ledger", bearer(SECRETS["qa_token"])),
        ("GET", f"/v1/admin/users/{user}/ledger", bearer(SECRETS["admin_token"][:-1])),
        ("GET", f"/v1/admin/users/{user}/ledger", bearer(user_token("ops", roles=["admin"]))),
        ("POST", "/v1/admin/grants", bearer(SECRETS["qa_token"])),
        ("POST", "/v1/operations/cutout", good),
        ("GET", "/v1/operations/nope", good),
        ("GET", "/v1/blobs/results/x.png?expires=1&sig=AAAA", {}),
        ("GET", "/schema/openapi.json", {}),
        ("GET", "/schema/openapi.yaml", {}),
        ("GET", "/schema", {}),
        ("GET", "/metrics", {}),
        ("GET", "/readyz", {}),
        ("GET", "/v1/features", {}),
    ] + [("GET", "/v1/me/ledger", good)] * 4  # past the rate limit
    texts = []
    for method, path, headers in calls:
        response = await client.request(method, path, headers=headers)
        assert response.status_code < 500, (path, response.text)
        texts.append(f"{response.status_code} {path}\n{response.headers}\n{response.text}")
    return texts


async def test_no_secret_in_logs_bodies_headers_or_schema(tmp_path):
    settings = security_settings(tmp_path, **SECRETS, rate_limit_per_minute=20,
                                 redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0")
    with LogTrap() as startup:
        async with in_process(settings) as (app, client):
            with LogTrap() as logs:  # again: Litestar's logging setup at startup may drop handlers
                texts = await exercise(client)
            schema = app.openapi_schema.to_schema()
    assert_clean(startup.text, "the startup logs")
    assert any(t.startswith("401 ") for t in texts) and any(t.startswith("403 ") for t in texts)
    for text in texts:
        assert_clean(text, text.split("\n", 1)[0])
    assert_clean(str(schema), "the OpenAPI document")
    assert "not enforced" in logs.text  # the broken Redis was reported...
    assert_clean(logs.text, "the logs")  # ...without its password


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {f"TRIALZONE_{k.upper()}": v for k, v in SECRETS.items()}
    env["TRIALZONE_REDIS_URL"] = f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"
    live = start_server(tmp_path_factory.mktemp("secrets"), **env)
    yield live
    live.stop()


async def test_no_secret_in_a_real_servers_log(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for text in await exercise(client):
            assert_clean(text, text.split("\n", 1)[0])
    server.stop()  # flush and include the shutdown lines
    assert_clean(server.log_path.read_text(errors="replace"), "the server log")
