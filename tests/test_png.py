"""The parallel-strip PNG writer: bit-exact round trips through Pillow, whatever the shape."""

from __future__ import annotations

import io
import random
import zlib

import numpy as np
import pytest
from PIL import Image

from app.imaging.png import adler32_combine, encode_png, encode_png_rows
from app.runners.cutout import cutout_rows


def test_adler32_combine_matches_zlib():
    rng = random.Random(7)
    for _ in range(200):
        a = rng.randbytes(rng.randrange(0, 300))
        b = rng.randbytes(rng.randrange(0, 70_000))
        assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


@pytest.fixture(params=["isal", "zlib"])
def deflate(request, monkeypatch):
    """ISA-L's deflate where its wheels install, zlib where they do not: both must give valid PNGs."""
    import app.imaging.png as png

    if request.param == "zlib":
        monkeypatch.setattr(png, "_deflate", zlib)
    else:
        assert png._deflate is not zlib, "python-isal is a dependency: it should be installed"
    return request.param


@pytest.mark.parametrize("shape", [(1, 1), (1, 5, 3), (7, 3, 4), (3000, 40, 4), (1001, 777, 3), (513, 2000)])
def test_round_trip(shape, deflate):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(encode_png(pixels))))
    assert back.shape == pixels.shape and (back == pixels).all()


def test_rows_composed_in_the_strips_equal_the_whole_cutout(deflate):
    rng = np.random.default_rng(1)
    rgbx = rng.integers(0, 256, (1500, 900, 4), dtype=np.uint8)  # the 4th byte is padding: ignored
    rgb = rgbx[:, :, :3]
    alpha = np.zeros((1500, 900), dtype=np.uint8)
    alpha[200:1300, 100:800] = rng.integers(0, 256, (1100, 700), dtype=np.uint8)
    png = encode_png_rows(1500, 900, 4, lambda a, b: cutout_rows(rgbx[a:b], alpha[a:b]))
    back = np.asarray(Image.open(io.BytesIO(png)))
    assert (back[:, :, 3] == alpha).all()
    assert not back[alpha == 0].any()  # fully transparent: no trace of the old background
    kept = alpha != 0
    assert (back[:, :, :3][kept] == rgb[kept]).all()  # straight colour under the matte
