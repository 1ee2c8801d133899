"""The service in process: readiness, admission control, failures that cost nothing, catalogue."""

from __future__ import annotations

import asyncio

from litestar.testing import AsyncTestClient

from app.main import create_app
from app.inference.registry import LoadedModel
from tests.conftest import make_settings
from tests.photos import jpeg

USER = {"X-User-Id": "alice"}


def files():
    return {"image": ("cat.jpg", jpeg("chelsea"), "image/jpeg")}


async def test_readyz_is_503_until_warm_up_then_200(tmp_path):
    app = create_app(make_settings(tmp_path, warmup=False))
    async with AsyncTestClient(app) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503 and response.json()["status"] == "warming up"
        assert (await client.get("/healthz")).status_code == 200
        await asyncio.to_thread(app.state.registry.warm_up)
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["models"] == {"u2netp": "CPUExecutionProvider"}


async def test_full_queue_answers_503_busy_with_retry_after(tmp_path):
    app = create_app(make_settings(tmp_path, queue_size=0, inference_workers=1))
    async with AsyncTestClient(app) as client:
        admission = app.state.registry.get("u2netp").admission
        async with admission.slot():  # the only worker is taken
            response = await client.post("/v1/operations/cutout", files=files(), headers=USER)
        assert response.status_code == 503
        assert response.json()["code"] == "busy"
        assert response.headers["retry-after"] == "2"
        assert (await client.get("/v1/me/balance", headers=USER)).json()["available"] == 500_000
        assert (await client.post("/v1/operations/cutout", files=files(), headers=USER)).status_code == 200


async def test_model_exception_costs_nothing_and_releases_the_hold(tmp_path, monkeypatch):
    app = create_app(make_settings(tmp_path))

    def explode(self, feeds, *rest):
        raise RuntimeError("injected model failure")

    async with AsyncTestClient(app) as client:
        monkeypatch.setattr(LoadedModel, "run_sync", explode)
        response = await client.post("/v1/operations/cutout", files=files(), headers=USER)
        assert response.status_code == 500
        problem = response.json()
        assert problem["code"] == "inference_failed" and "injected" not in response.text
        op = (await client.get(f"/v1/operations/{problem['operation_id']}", headers=USER)).json()
        assert op["status"] == "failed" and op["error_code"] == "inference_failed" and op["tokens_charged"] == 0
        assert op["result_url"] is None and op["result_content_type"] is None  # its key was recorded, no result
        balance = (await client.get("/v1/me/balance", headers=USER)).json()
        assert balance["available"] == 500_000 and balance["held"] == 0


async def test_truncated_jpeg_found_at_decode_releases_the_hold(client):
    response = await client.post("/v1/operations/cutout", headers=USER,
                                 files={"image": ("t.jpg", jpeg("astronaut")[:5000], "image/jpeg")})
    assert response.status_code == 415 and response.json()["code"] == "unsupported_image"
    ops = (await client.get("/v1/operations", headers=USER)).json()["items"]
    assert [o["status"] for o in ops] == ["failed"]
    balance = (await client.get("/v1/me/balance", headers=USER)).json()
    assert balance["available"] == 500_000 and balance["held"] == 0


async def test_features_list_prices_and_availability(client):
    features = {f["name"]: f for f in (await client.get("/v1/features")).json()}
    assert features["cutout"]["price"] == 31_000
    assert features["cutout"]["available"] is True
    assert features["cutout"]["models"] == ["u2netp"]
    assert features["pet-generate"]["available"] is False


async def test_unknown_feature_is_404_problem(client):
    response = await client.post("/v1/operations/teleport", files=files(), headers=USER)
    assert response.status_code == 404 and response.json()["code"] == "unknown_feature"


async def test_no_credentials_is_401(client):
    response = await client.post("/v1/operations/cutout", files=files())
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"


async def test_openapi_schema_is_served(client):
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/v1/operations/{feature}" in schema["paths"]
    assert "admin-secret" not in str(schema)
