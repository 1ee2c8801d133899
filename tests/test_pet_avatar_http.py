"""The pet avatar through the HTTP API: same path, same debit, same errors as every feature."""

from __future__ import annotations

import io

import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from PIL import Image

from app.main import create_app
from tests.conftest import make_settings
from tests.photos import encode, jpeg

USER = {"X-User-Id": "pet-owner"}


@pytest.fixture
async def pet_client(tmp_path):
    app = create_app(make_settings(tmp_path, models="u2netp,multistyle26,arbitrary_predict,arbitrary_transform"))
    async with AsyncTestClient(app, timeout=120) as client:
        yield client


async def balance(client) -> int:
    return (await client.get("/v1/me/balance", headers=USER)).json()["available"]


async def test_avatar_is_charged_once_and_returned(pet_client):
    response = await pet_client.post(
        "/v1/operations/pet-avatar", headers=USER,
        files={"image": ("cat.jpg", jpeg("chelsea"), "image/jpeg")},
        data={"style": "starry-night", "background": "#102030", "size": "256"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-tokens-charged"] == "60000"
    avatar = Image.open(io.BytesIO(response.content))
    assert avatar.size == (256, 256)
    assert tuple(np.asarray(avatar.convert("RGB"))[0, 0]) == (16, 32, 48)
    assert await balance(pet_client) == 440_000


async def test_flat_grey_photo_is_no_subject_found_and_free(pet_client):
    grey = encode(Image.new("RGB", (400, 300), (128, 128, 128)), "PNG")
    response = await pet_client.post("/v1/operations/pet-avatar", headers=USER,
                                     files={"image": ("grey.png", grey, "image/png")})
    assert response.status_code == 422 and response.json()["code"] == "no_subject_found"
    assert await balance(pet_client) == 500_000
    ops = (await pet_client.get("/v1/operations", headers=USER)).json()["items"]
    assert ops[0]["status"] == "failed" and ops[0]["error_code"] == "no_subject_found"


async def test_style_catalogue_lists_26_styles_with_thumbnails(pet_client):
    styles = (await pet_client.get("/v1/features/pet-avatar/styles")).json()
    assert len(styles) == 26 and len({s["slug"] for s in styles}) == 26
    thumb = await pet_client.get(styles[19]["thumbnail_url"])
    assert thumb.status_code == 200
    assert Image.open(io.BytesIO(thumb.content)).format == "WEBP"
