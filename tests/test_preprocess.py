"""U^2-Net's input is rembg's, bit for bit: our masks can only match rembg's if the model sees
what rembg feeds it (the banded resize, the lookup-table normalisation and the zero-copy pixels
are speed, never a change of input)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from app.imaging.memory import tune_allocator
from app.imaging.pixels import pixels
from app.inference.families import u2net
from tests.conftest import MODELS
from tests.photos import photo


@pytest.fixture(scope="module")
def rembg_input():
    os.environ["U2NET_HOME"] = MODELS
    from rembg import new_session

    session = new_session("u2netp", providers=["CPUExecutionProvider"])
    return lambda image: session.normalize(image, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (320, 320))


@pytest.mark.parametrize(("name", "size"), [
    ("chelsea", (1226, 816)), ("astronaut", (816, 1226)), ("coffee", (3024, 4032)), ("chelsea", (1001, 999)),
    ("rocket", (300, 200)), ("coffee", (320, 320)),
])
def test_u2net_input_is_rembgs(rembg_input, name, size):
    image = photo(name).resize(size)
    ours, theirs = u2net.preprocess(image, "input.1"), rembg_input(image)
    assert ours.keys() == theirs.keys()
    assert ours["input.1"].dtype == np.float32 and ours["input.1"].flags.c_contiguous
    assert np.array_equal(ours["input.1"], theirs["input.1"])


def test_u2net_input_of_a_dark_or_transparent_photo_is_rembgs(rembg_input):
    dark = Image.new("RGB", (640, 480))
    assert np.array_equal(u2net.preprocess(dark)["input.1"], rembg_input(dark)["input.1"])
    rgba = photo("astronaut").convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    assert np.array_equal(u2net.preprocess(rgba)["input.1"], rembg_input(rgba)["input.1"])


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_pixels_are_pillows_own_without_a_copy(mode):
    tune_allocator()  # as at start-up: one block per image
    image = photo("coffee").resize((4032, 3024)).convert(mode)  # 48 MB: more than one 16 MB block
    view = pixels(image)
    assert view.shape == (3024, 4032, 4) and view.dtype == np.uint8 and not view.flags.writeable
    channels = 4 if mode == "RGBA" else 3
    assert np.array_equal(view[:, :, :channels], np.asarray(image))
    again = pixels(image)
    assert again.__array_interface__["data"][0] == view.__array_interface__["data"][0]  # the same memory
    expected = np.asarray(image)[:, :, :3].copy()
    del image, again
    junk = [np.full(16 << 20, 7, np.uint8) for _ in range(4)]  # reuse freed memory, if any was freed
    assert np.array_equal(view[:, :, :3], expected)  # the view kept the image's memory alive
    del junk


def test_pixels_of_an_image_in_several_blocks_are_a_copy():
    """Arrow cannot export an image spread over several blocks (a process that did not tune
    Pillow's block size): the pixels are then copied, still right."""
    from PIL import Image as PILImage

    before = PILImage.core.get_block_size()
    PILImage.core.set_block_size(1 << 20)
    try:
        image = photo("astronaut").resize((1024, 1024))  # 4 MB of 4-byte pixels: four blocks
        view = pixels(image)
    finally:
        PILImage.core.set_block_size(before)
    assert type(view.base).__name__ != "_Export"
    assert view.shape == (1024, 1024, 4) and np.array_equal(view[:, :, :3], np.asarray(image))
