"""Smart removal over HTTP: the photo comes back without the mark at the removal price, and a
bad area is a problem that holds and costs nothing."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.test_removal import DISCS, RED, disc, photo_of, png

USER = {"X-User-Id": "bob"}


async def test_removal_answers_the_photo_without_the_mark(client):
    photo = photo_of("astronaut")
    centre, radius = DISCS["astronaut"]
    drawn = disc(photo.shape, centre, radius)
    photo[drawn] = RED
    files = {"image": ("p.png", png(photo), "image/png")}
    strokes = json.dumps([{"points": [list(centre)], "width": 2 * radius + 4}])
    response = await client.post("/v1/operations/removal", files=files, data={"strokes": strokes}, headers=USER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-tokens-charged"] == "40000" and response.headers["x-tokens-remaining"] == "460000"
    out = np.asarray(Image.open(io.BytesIO(response.content)))
    assert out.shape == photo.shape
    assert not ((out[..., 0] > 200) & (out[..., 1] < 60) & (out[..., 2] < 60))[drawn].any()
    far = ~disc(photo.shape, centre, radius + 40)
    assert np.array_equal(out[far], photo[far])


@pytest.mark.parametrize("data,code", [
    ({}, "area_missing"),
    ({"strokes": "not json"}, "invalid_strokes"),
    ({"boxes": "[[0, 0, 600, 10]]"}, "invalid_boxes"),
    ({"boxes": "[]"}, "area_empty"),
    ({"boxes": "[[0, 0, 512, 300]]"}, "area_too_large"),
])
async def test_bad_area_is_a_problem_that_costs_nothing(client, data, code):
    files = {"image": ("p.png", png(photo_of("astronaut")), "image/png")}
    response = await client.post("/v1/operations/removal", files=files, data=data, headers=USER)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    balance = (await client.get("/v1/me/balance", headers=USER)).json()
    assert balance["available"] == 500_000 and balance["held"] == 0
