"""User A can never see or affect user B's operations, results, ledger or orders: every user
endpoint, tried across users, answers 404 (exactly like something that does not exist) or shows
only the caller's own. Signed result links are bound to their object and expiry (here: the
object; the expiry and tampering tests are in tests/test_operations_storage.py::
test_round_trip_record_result_and_signed_link, and the S3 ones in tests/test_storage.py).
Staff endpoints need their role (tests/security/test_auth.py::test_each_role_against_each_staff_endpoint)."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import quote, urlsplit

import pytest
import pytest_asyncio

from app.http.openapi import STAFF_PATHS
from app.main import create_app
from tests.security.conftest import bearer, in_process, security_settings, token, unique
from tests.security.hostile_corpus import jpeg

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Every endpoint a user reaches with their own credential, and the test that tries it across users.
USER_ENDPOINTS = {
    ("POST", "/v1/operations/{feature}"): "test_an_idempotency_key_is_per_user",
    ("GET", "/v1/operations"): "test_operations_and_results_are_private",
    ("GET", "/v1/operations/{operation_id}"): "test_operations_and_results_are_private",
    ("GET", "/v1/operations/{operation_id}/result"): "test_operations_and_results_are_private",
    ("GET", "/v1/me/balance"): "test_balance_ledger_and_quote_are_private",
    ("GET", "/v1/me/ledger"): "test_balance_ledger_and_quote_are_private",
    ("GET", "/v1/features/{name}/quote"): "test_balance_ledger_and_quote_are_private",
    ("POST", "/v1/orders"): "test_orders_are_private",
    ("GET", "/v1/orders"): "test_orders_are_private",
    ("GET", "/v1/orders/{order_id}"): "test_orders_are_private",
    ("POST", "/v1/orders/{order_id}/cancel-renewal"): "test_orders_are_private",
}


class World(SimpleNamespace):
    pass


class FakeBilling:
    """Takes every charge (the outcome would come by callback; pending is enough here)."""

    async def charge(self, order):
        from app.billing.protocol import ChargeAck

        return ChargeAck(charge_id=f"ch_{order.id}")

    async def refund(self, order, amount_fen):  # pragma: no cover - not used here
        raise AssertionError("no refunds in this test")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    """Production-like: users only by JWT (no dev header). Alice has a cutout and an order."""
    settings = security_settings(tmp_path_factory.mktemp("isolation"), dev_user_header=None)
    async with in_process(settings) as (app, client):
        alice, bob = unique("alice"), unique("bob")
        a, b = bearer(token(alice)), bearer(token(bob))
        made = await client.post("/v1/operations/cutout", headers=a | {"Idempotency-Key": "shared-key", "Accept": "application/json"},
                                 files={"image": ("p.jpg", jpeg(), "image/jpeg")})
        assert made.status_code == 200, made.text
        yield World(app=app, client=client, alice=alice, bob=bob, a=a, b=b, op=made.json())


def assert_not_found(response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["code"] in ("not_found", "unknown_feature", "unknown_order", "order_not_found")


async def test_operations_and_results_are_private(world):
    client, op = world.client, world.op
    for path in (f"/v1/operations/{op['id']}", f"/v1/operations/{op['id']}/result"):
        assert (await client.get(path, headers=world.a)).status_code == 200
        assert_not_found(await client.get(path, headers=world.b))
    for variant in (op["id"].upper(), f"{op['id']}%20", quote(f"{op['id']}/", safe=""), f"{op['id']}.png",
                    f"../{op['id']}"):
        assert (await client.get(f"/v1/operations/{variant}", headers=world.b)).status_code in (404, 400)
    for query in ("", "?feature=cutout", "?status=succeeded", "?before=2999-01-01T00:00:00Z&limit=100"):
        listed = await client.get(f"/v1/operations{query}", headers=world.b)
        assert listed.status_code == 200 and listed.json()["items"] == [], query
    mine = (await client.get("/v1/operations", headers=world.a)).json()["items"]
    assert [o["id"] for o in mine] == [op["id"]]


async def test_balance_ledger_and_quote_are_private(world):
    client, op = world.client, world.op
    theirs = (await client.get("/v1/me/balance", headers=world.a)).json()
    mine = (await client.get("/v1/me/balance", headers=world.b)).json()
    assert theirs["user_id"] == world.alice and theirs["available"] == 500_000 - 31_000
    assert mine["user_id"] == world.bob and mine["available"] == 500_000
    assert not {g["id"] for g in mine["grants"]} & {g["id"] for g in theirs["grants"]}
    journal = (await client.get("/v1/me/ledger?limit=200", headers=world.b)).json()["items"]
    assert journal and all(e["operation_id"] != op["id"] for e in journal)
    assert op["id"] not in str(journal)
    quote_ = (await client.get("/v1/features/cutout/quote", headers=world.b)).json()["quote"]
    assert {p["grant_id"] for p in quote_["parts"]} <= {g["id"] for g in mine["grants"]}


async def test_an_idempotency_key_is_per_user(world):
    """Bob replaying Alice's key gets his own operation, charged to him: never Alice's answer."""
    client, op = world.client, world.op
    response = await client.post("/v1/operations/cutout", headers=world.b | {"Idempotency-Key": "shared-key"},
                                 files={"image": ("p.jpg", jpeg(), "image/jpeg")})
    assert response.status_code == 200
    assert response.headers["x-operation-id"] != op["id"] and "idempotent-replayed" not in response.headers
    assert response.headers["x-tokens-remaining"] == str(500_000 - 31_000)
    assert (await client.get("/v1/me/balance", headers=world.a)).json()["available"] == 500_000 - 31_000
    assert (await client.get(f"/v1/operations/{response.headers['x-operation-id']}", headers=world.a)).status_code == 404


async def test_a_signed_link_opens_only_its_own_object(world):
    """The link is a capability for one object until it expires: the same signature never opens
    the input, another user's result, or a path outside the store."""
    client, op = world.client, world.op
    parts = urlsplit(op["result_url"])
    assert (await client.get(f"{parts.path}?{parts.query}")).status_code == 200  # no credential needed
    key = parts.path.removeprefix("/v1/blobs/")
    assert key.startswith(f"results/{world.alice}/")
    forged_keys = [f"inputs/{world.alice}/{op['id']}", key.replace(world.alice, world.bob),
                   "../../../../etc/passwd", f"{key}/../../signing.key", key + ".bak"]
    for forged in forged_keys:
        response = await client.get(f"/v1/blobs/{forged}?{parts.query}")
        assert response.status_code in (403, 404), (forged, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_orders_are_private(world):
    orders = getattr(world.app.state, "orders", None)
    if orders is None:
        pytest.skip("this build has no orders")
    orders.billing = FakeBilling()
    client = world.client
    created = await client.post("/v1/orders", json={"package_id": "monthly-9.9"},
                                headers=world.a | {"Idempotency-Key": "order-key"})
    assert created.status_code == 201, created.text
    order = created.json()
    for method, path in (("GET", f"/v1/orders/{order['id']}"), ("POST", f"/v1/orders/{order['id']}/cancel-renewal")):
        assert_not_found(await client.request(method, path, headers=world.b))
    assert (await client.get("/v1/orders", headers=world.b)).json() == []
    again = await client.post("/v1/orders", json={"package_id": "monthly-9.9"},
                              headers=world.b | {"Idempotency-Key": "order-key"})
    assert again.status_code == 201 and again.json()["id"] != order["id"]  # Bob's own order
    mine = (await client.get(f"/v1/orders/{order['id']}", headers=world.a)).json()
    assert mine["renewal"] != "cancelled"  # Bob's attempt changed nothing


async def test_someone_elses_user_id_cannot_be_claimed(world):
    """Without the dev header (production), naming a user is not a credential."""
    response = await world.client.get("/v1/me/balance", headers={"X-User-Id": world.alice})
    assert response.status_code == 401


async def test_every_user_endpoint_is_covered(tmp_path):
    """A new user endpoint must be added to USER_ENDPOINTS with its cross-user test."""
    schema = create_app(security_settings(tmp_path)).openapi_schema.to_schema()
    found = {(method.upper(), path.rstrip("/") or "/") for path, item in schema["paths"].items()
             for method, op in item.items() if method in ("get", "post", "put", "patch", "delete")
             and op.get("security") and not path.startswith(STAFF_PATHS)}
    assert found == set(USER_ENDPOINTS)
    assert all(name in globals() for name in USER_ENDPOINTS.values())
