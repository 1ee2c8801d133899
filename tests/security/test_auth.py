"""Who may do what: app users' JWTs (HS256 secret, PEM public keys, JWKS), the development
header, and the staff roles against each staff endpoint."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app.http.auth import AuthConfigError, Authenticator
from app.http.openapi import STAFF_PATHS
from app.main import create_app
from tests.security.conftest import (
    ADMIN_TOKEN, AUDIENCE, ISSUER, QA_TOKEN, SECRET, SUPPORT_TOKEN, bearer, claims, hand_signed, in_process,
    security_settings, token, unique,
)

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
module_loop = pytest.mark.asyncio(loop_scope="module")  # the tests sharing the module's app


def _unauthorized(response) -> dict:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem = response.json()
    assert problem["code"] == "unauthorized" and problem["status"] == 401
    return problem


# --- HS256 -------------------------------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hs(tmp_path_factory):
    async with in_process(security_settings(tmp_path_factory.mktemp("hs"))) as (app, client):
        yield client


@module_loop
async def test_valid_token_names_the_user(hs):
    user = unique("jwt")
    response = await hs.get("/v1/me/balance", headers=bearer(token(user)))
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == user


@module_loop
async def test_leeway_is_thirty_seconds(hs):
    assert (await hs.get("/v1/me/balance", headers=bearer(token(exp_in=-20)))).status_code == 200
    assert (await hs.get("/v1/me/balance", headers=bearer(token(nbf_in=20)))).status_code == 200


BAD_TOKENS = {
    "expired": (lambda: token(exp_in=-120), "expired"),
    "not yet valid": (lambda: token(nbf_in=600), "not valid yet"),
    "wrong audience": (lambda: token(aud="another-app"), "audience"),
    "no audience": (lambda: token(aud=None), "'aud'"),
    "wrong issuer": (lambda: token(iss="https://evil.example"), "issued by someone else"),
    "no issuer": (lambda: token(iss=None), "'iss'"),
    "wrong key": (lambda: token(key="another-secret-of-sufficient-length-0123456789"), "signature"),
    "no exp": (lambda: token(exp_in=None), "'exp'"),
    "no sub": (lambda: token(sub=None), "'sub'"),
    "sub with bad characters": (lambda: token(sub="alice\r\nX-Admin: yes"), "subject"),
    "sub too long": (lambda: token(sub="a" * 129), "subject"),
    "sub not a string": (lambda: hand_signed(claims(42), SECRET.encode()), "not valid"),
    "exp not a number": (lambda: hand_signed(claims(exp="tomorrow"), SECRET.encode()), "not valid"),
    "alg none": (lambda: jwt.encode({"sub": "alice", "exp": 2**31, "iss": ISSUER, "aud": AUDIENCE}, None,
                                    algorithm="none"), "algorithm"),
    "alg none, hand-made": (lambda: _unsigned({"alg": "none", "typ": "JWT"}), "algorithm"),
    "alg HS512": (lambda: token(alg="HS512"), "algorithm"),
    "garbage": (lambda: "not-a-jwt", "well-formed"),
    "three dots of garbage": (lambda: "a.b.c", "well-formed"),
    "huge": (lambda: "e" * 9000, "too long"),
    "signature stripped": (lambda: token().rsplit(".", 1)[0] + ".", "signature"),
}


def _unsigned(header: dict) -> str:
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64({'sub': 'alice', 'exp': 2**31, 'iss': ISSUER, 'aud': AUDIENCE})}."


@pytest.mark.parametrize("case", list(BAD_TOKENS))
@module_loop
async def test_bad_tokens_are_401(hs, case):
    make, words = BAD_TOKENS[case]
    bad = make()
    response = await hs.get("/v1/me/balance", headers=bearer(bad))
    problem = _unauthorized(response)
    assert words in problem["detail"], problem
    assert bad not in response.text or len(bad) < 8  # the token is never echoed


@module_loop
async def test_other_schemes_and_empty_bearer_are_401(hs):
    for header in ("Basic YWxpY2U6cHc=", "Bearer", "Bearer ", "Token abc", "bearer"):
        _unauthorized(await hs.get("/v1/me/balance", headers={"Authorization": header}))


@module_loop
async def test_a_bearer_token_wins_over_the_dev_header_and_never_falls_back(hs):
    user = unique("jwt-wins")
    both = bearer(token(user)) | {"X-User-Id": "someone-else"}
    assert (await hs.get("/v1/me/balance", headers=both)).json()["user_id"] == user
    bad = bearer(token(user, exp_in=-600)) | {"X-User-Id": "someone-else"}
    _unauthorized(await hs.get("/v1/me/balance", headers=bad))
    # a staff credential is not a user's token either
    _unauthorized(await hs.get("/v1/me/balance", headers=bearer(ADMIN_TOKEN) | {"X-User-Id": "x"}))


@module_loop
async def test_the_dev_header_works_only_when_configured(tmp_path):
    async with in_process(security_settings(tmp_path, dev_user_header=None)) as (_, client):
        _unauthorized(await client.get("/v1/me/balance", headers={"X-User-Id": "alice"}))
        assert (await client.get("/v1/me/balance", headers=bearer(token("alice")))).status_code == 200
    async with in_process(security_settings(tmp_path / "dev")) as (_, client):
        assert (await client.get("/v1/me/balance", headers={"X-User-Id": "alice"})).status_code == 200
        _unauthorized(await client.get("/v1/me/balance", headers={"X-User-Id": "alice smith"}))


@module_loop
async def test_user_endpoints_need_a_user(hs):
    for path in ("/v1/me/balance", "/v1/me/ledger", "/v1/operations", "/v1/operations/abc",
                 "/v1/operations/abc/result", "/v1/features/cutout/quote"):
        _unauthorized(await hs.get(path))
    _unauthorized(await hs.post("/v1/operations/cutout", files={"image": ("a.jpg", b"x", "image/jpeg")}))


# --- public keys: PEM and JWKS -----------------------------------------------------------------------

def _pem(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _jwk(public_key, kid: str, **extra) -> dict:
    data = json.loads(jwt.algorithms.get_default_algorithms()[
        "RS256" if isinstance(public_key, rsa.RSAPublicKey) else
        "EdDSA" if isinstance(public_key, ed25519.Ed25519PublicKey) else "ES256"].to_jwk(public_key))
    return data | {"kid": kid, "use": "sig"} | extra


@pytest.fixture(scope="module")
def keys():
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
    }


@module_loop
async def test_rs256_and_es256_from_pem_and_no_key_confusion(tmp_path, keys):
    pem_file = tmp_path / "keys.pem"
    pem_file.write_bytes(_pem(keys["rsa"].public_key()) + _pem(keys["ec"].public_key()))
    settings = security_settings(tmp_path, jwt_hs256_secret=None, jwt_public_key_file=str(pem_file))
    async with in_process(settings) as (_, client):
        for alg, key in (("RS256", keys["rsa"]), ("ES256", keys["ec"])):
            user = unique(alg.lower())
            response = await client.get("/v1/me/balance", headers=bearer(token(user, key=key, alg=alg)))
            assert response.status_code == 200 and response.json()["user_id"] == user, response.text
        # HS256 "signed" with the public key's PEM (the classic confusion attack)
        confused = hand_signed(claims("alice"), _pem(keys["rsa"].public_key()))
        _unauthorized(await client.get("/v1/me/balance", headers=bearer(confused)))
        # a key of the right type that is not ours
        _unauthorized(await client.get("/v1/me/balance", headers=bearer(token(key=keys["rsa2"], alg="RS256"))))
        # the right key with an algorithm it is not pinned to
        _unauthorized(await client.get("/v1/me/balance", headers=bearer(token(key=keys["rsa"], alg="PS256"))))
        # no HS256 at all without a secret
        _unauthorized(await client.get("/v1/me/balance", headers=bearer(token())))


@module_loop
async def test_jwks_selects_by_kid_and_supports_rotation(tmp_path, keys):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(keys["rsa"].public_key(), "2024"),
                                         _jwk(keys["rsa2"].public_key(), "2025"),
                                         _jwk(keys["ed"].public_key(), "ed-1")]}))
    settings = security_settings(tmp_path, jwt_public_key_file=str(jwks))  # and the HS256 secret
    async with in_process(settings) as (_, client):
        cases = [("2024", keys["rsa"], "RS256"), ("2025", keys["rsa2"], "RS256"), ("ed-1", keys["ed"], "EdDSA")]
        for kid, key, alg in cases:
            user = unique(kid)
            response = await client.get("/v1/me/balance", headers=bearer(token(user, key=key, alg=alg,
                                                                               headers={"kid": kid})))
            assert response.status_code == 200 and response.json()["user_id"] == user, response.text
        assert (await client.get("/v1/me/balance", headers=bearer(token()))).status_code == 200  # HS256 too
        wrong_kid = token(key=keys["rsa"], alg="RS256", headers={"kid": "2025"})
        _unauthorized(await client.get("/v1/me/balance", headers=bearer(wrong_kid)))
        unknown_kid = token(key=keys["rsa"], alg="RS256", headers={"kid": "1999"})
        _unauthorized(await client.get("/v1/me/balance", headers=bearer(unknown_kid)))


@pytest.mark.parametrize("content, message", [
    (json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}), "symmetric"),
    ("not a key at all", "neither PEM nor JWKS"),
    ("{not json", "not valid JSON"),
    (json.dumps({"keys": []}), "no usable public key"),
])
def test_unusable_key_files_fail_at_startup(tmp_path, content, message):
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(AuthConfigError, match=message):
        create_app(security_settings(tmp_path, jwt_public_key_file=str(path)))


def test_private_keys_are_refused(tmp_path, keys):
    path = tmp_path / "private.pem"
    path.write_bytes(keys["rsa"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    with pytest.raises(AuthConfigError, match="private key"):
        Authenticator(security_settings(tmp_path, jwt_public_key_file=str(path)))
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys["rsa"]))
    path.write_text(json.dumps({"keys": [jwk]}))
    with pytest.raises(AuthConfigError, match="private key"):
        Authenticator(security_settings(tmp_path, jwt_public_key_file=str(path)))


def test_config_errors_do_not_echo_key_material(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "RSA", "n": "SECRET-LOOKING-MODULUS", "e": "AQAB"}]}))
    with pytest.raises(AuthConfigError) as info:
        Authenticator(security_settings(tmp_path, jwt_public_key_file=str(path)))
    assert "SECRET-LOOKING" not in str(info.value)


# --- staff roles ------------------------------------------------------------------------------------

GRANT = "/v1/admin/grants"
USER_LEDGER = "/v1/admin/users/{user}/ledger"
# Which roles each staff endpoint admits. A new staff endpoint belongs here (see test below).
STAFF_ENDPOINTS = {
    ("POST", "/v1/admin/grants"): {"admin"},
    ("GET", "/v1/admin/users/{user_id}/ledger"): {"admin", "support"},
    ("POST", "/v1/admin/orders/{order_id}/refund"): {"admin"},
    ("GET", "/v1/support/whoami"): {"admin", "support"},
    ("POST", "/v1/support/users/{user_id}/adjustments"): {"admin", "support"},
    ("GET", "/v1/qa/test-users"): {"qa"},
    ("POST", "/v1/qa/test-users"): {"qa"},
    ("POST", "/v1/qa/test-users/{user_id}/top-up"): {"qa"},
    ("POST", "/v1/qa/test-users/{user_id}/reset"): {"qa"},
    ("GET", "/v1/qa/samples"): {"qa"},
}

CREDENTIALS = {
    "admin token": (lambda: bearer(ADMIN_TOKEN), "admin"),
    "support token": (lambda: bearer(SUPPORT_TOKEN), "support"),
    "qa token": (lambda: bearer(QA_TOKEN), "qa"),
    "admin JWT": (lambda: bearer(token("ops-ann", roles=["admin"])), "admin"),
    "support JWT": (lambda: bearer(token("cs-bob", roles="support")), "support"),
    "qa JWT": (lambda: bearer(token("qa-cai", roles=["qa"])), "qa"),
    "app user JWT": (lambda: bearer(token("alice")), None),
    "made-up roles claim": (lambda: bearer(token("eve", roles=["root", "superuser"])), None),
    "wrong token": (lambda: bearer("admin-secret-but-not-quite"), None),
}


def _grant_body(user: str) -> dict:
    return {"user_id": user, "kind": "adjustment", "amount": 1000, "source_ref": unique("ticket")}


async def _call(client, method: str, path: str, headers: dict):
    user = unique("subject")
    if path == GRANT:
        return await client.post(path, json=_grant_body(user), headers=headers)
    path = path.replace("{user_id}", user).replace("{order_id}", "ord_does_not_exist")
    return await client.request(method, path, headers=headers, json={} if method == "POST" else None)


@pytest.mark.parametrize("credential", list(CREDENTIALS))
@module_loop
async def test_each_role_against_each_staff_endpoint(hs, credential):
    make, role = CREDENTIALS[credential]
    for (method, path), allowed in STAFF_ENDPOINTS.items():
        response = await _call(hs, method, path, make())
        if role in allowed:  # let in: then the endpoint's own answer (a refund of no order is 404, ...)
            assert response.status_code not in (401, 403), (credential, path, response.text)
            assert response.status_code < 500, (credential, path, response.text)
        else:
            assert response.status_code == 403, (credential, path, response.text)
            assert response.json()["code"] == "forbidden"


@module_loop
async def test_staff_endpoints_without_or_with_bad_credentials(hs):
    for (method, path) in STAFF_ENDPOINTS:
        for headers in ({}, {"X-User-Id": "alice"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
            _unauthorized(await _call(hs, method, path, headers))
        expired = bearer(token("ops-ann", roles=["admin"], exp_in=-600))
        _unauthorized(await _call(hs, method, path, expired))
        forged = bearer(token("ops-ann", roles=["admin"], key="not-our-secret-but-long-enough-000000"))
        _unauthorized(await _call(hs, method, path, forged))


@module_loop
async def test_a_role_without_a_credential_is_off(tmp_path):
    async with in_process(security_settings(tmp_path, support_token=None)) as (_, client):
        response = await client.get(USER_LEDGER.format(user="alice"), headers=bearer(SUPPORT_TOKEN))
        assert response.status_code == 403


@module_loop
async def test_the_grant_journal_names_the_operator(hs):
    by_token = await hs.post(GRANT, json=_grant_body(unique("u")), headers=bearer(ADMIN_TOKEN))
    assert by_token.status_code == 201 and by_token.json()["actor"] == "admin"
    by_jwt = await hs.post(GRANT, json=_grant_body(unique("u")), headers=bearer(token("ops-ann", roles=["admin"])))
    assert by_jwt.status_code == 201 and by_jwt.json()["actor"] == "ops-ann (admin)"


@module_loop
async def test_staff_are_checked_before_the_body_is_read(hs):
    """The admin guard runs before the body is parsed: strangers learn nothing from validation."""
    response = await hs.post(GRANT, content=b"\xff\xfe{not json", headers={"Content-Type": "application/json"})
    _unauthorized(response)
    response = await hs.post(GRANT, content=b"{}", headers=bearer("wrong") | {"Content-Type": "application/json"})
    assert response.status_code == 403


def test_every_staff_endpoint_is_in_the_matrix(tmp_path):
    """A new staff endpoint must be added to STAFF_ENDPOINTS (and so to the role test)."""
    schema = create_app(security_settings(tmp_path)).openapi_schema.to_schema()
    found = {(method.upper(), path) for path, item in schema["paths"].items() if path.startswith(STAFF_PATHS)
             for method in item if method in ("get", "post", "put", "patch", "delete")}
    assert found == set(STAFF_ENDPOINTS)
