"""Pet avatar runner on a real photo (scikit-image's chelsea): every style, blends, a style
picture, backgrounds, no subject, and the 4xx answers to bad options."""

from __future__ import annotations

import io
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.errors import DomainError, NoSubjectFound
from app.features.catalogue import Catalogue
from app.inference.registry import ModelRegistry
from app.pets.styles import STYLES
from app.runners.base import Upload
from app.runners.pet_avatar import PetAvatarRunner
from app.settings import Settings
from skimage import data


MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
MODELS = "u2netp,multistyle26,arbitrary_predict,arbitrary_transform"
GREEN = (0, 200, 0)


def png(pixels: np.ndarray) -> Upload:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return Upload("photo.png", "image/png", out.getvalue())


TINY = png(np.full((64, 64, 3), 90, dtype=np.uint8))


@pytest.fixture(scope="module")
def runner():
    settings = Settings(models_dir=str(MODELS_DIR), models=MODELS, warmup=False)
    registry = ModelRegistry(settings)
    registry.load()
    yield PetAvatarRunner(registry, settings)
    registry.close()


@pytest.fixture(scope="module")
def feature():
    return Catalogue.load().get("pet-avatar")


@pytest.fixture(scope="module")
def chelsea():
    return data.chelsea()


async def avatar(runner, feature, photo, **options):
    result = await runner.run(runner.prepare({"image": png(photo), **options}, feature))
    return np.asarray(Image.open(io.BytesIO(result.body))), result


def original_in_frame(photo: np.ndarray, frame: list[int], size: int) -> np.ndarray:
    """The unstylised photo framed as the avatar is, for comparison."""
    return np.asarray(Image.fromarray(photo).crop(tuple(frame)).resize((size, size), Image.Resampling.LANCZOS))


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


async def test_every_style_paints_the_cat_on_the_background(runner, feature, chelsea):
    size = 256
    matte, result = await avatar(runner, feature, chelsea, style="0", size=str(size), background="transparent")
    assert matte.shape == (size, size, 4)
    alpha = matte[..., 3]
    background, subject = alpha == 0, alpha >= 250  # u2netp's matte tops out at 254
    assert background.mean() > 0.2 and subject.mean() > 0.2
    original = original_in_frame(chelsea, result.meta["frame"], size)[subject]

    painted = {}
    for style in STYLES:
        pixels, _ = await avatar(runner, feature, chelsea, style=style.slug, size=str(size), background="#00c800")
        assert pixels.shape == (size, size, 3), style
        assert (pixels[background] == GREEN).all(), style
        painted[style.id] = pixels[subject]
        assert mean_diff(painted[style.id], original) > 20, f"{style} barely changes the photo"
    closest = min(mean_diff(painted[a], painted[b]) for a, b in combinations(painted, 2))
    assert closest > 8, "two styles give nearly the same avatar"


async def test_blend_differs_from_each_pure_style(runner, feature, chelsea):
    first, _ = await avatar(runner, feature, chelsea, style="3", size="256")
    second, _ = await avatar(runner, feature, chelsea, style="starry-night", size="256")
    mixed, result = await avatar(runner, feature, chelsea, blend="3:1,starry-night:1", size="256")
    assert mean_diff(mixed, first) > 5 and mean_diff(mixed, second) > 5
    assert result.model == "multistyle26"


async def test_style_image_paints_with_any_picture(runner, feature, chelsea):
    style = png(data.astronaut())
    prepared = runner.prepare({"image": png(chelsea), "style_image": style, "size": "256", "format": "webp"}, feature)
    assert prepared.options["style_models"] == ["arbitrary_predict", "arbitrary_transform"]
    result = await runner.run(prepared)
    assert result.content_type == "image/webp"
    pixels = np.asarray(Image.open(io.BytesIO(result.body)).convert("RGB"))
    assert pixels.shape == (256, 256, 3)
    assert mean_diff(pixels, original_in_frame(chelsea, result.meta["frame"], 256)) > 15


async def test_gradient_background_and_original_framing(runner, feature, chelsea):
    pixels, result = await avatar(runner, feature, chelsea, style="1", size="300", framing="original",
                                  background="#ff0000,#0000ff")
    assert pixels.shape == (200, 300, 3) and result.meta["frame"] == [0, 0, 451, 300]
    square, _ = await avatar(runner, feature, chelsea, style="1", size="128", background="#ff0000,#0000ff")
    assert tuple(square[0, 0]) == (255, 0, 0) and tuple(square[-1, 0]) == (0, 0, 255)


async def test_flat_grey_photo_has_no_subject(runner, feature):
    grey = np.full((300, 400, 3), 128, dtype=np.uint8)
    prepared = runner.prepare({"image": png(grey), "style": "0"}, feature)
    with pytest.raises(NoSubjectFound) as caught:
        await runner.run(prepared)
    assert caught.value.code == "no_subject_found" and caught.value.status == 422


@pytest.mark.parametrize("form, code, status", [
    ({"style": "26"}, "invalid_option", 422),
    ({"style": "no-such-style"}, "invalid_option", 422),
    ({"blend": "3:1"}, "invalid_option", 422),
    ({"blend": "3:1,4:1,5:1,6:1"}, "invalid_option", 422),
    ({"blend": "3:1,3:2"}, "invalid_option", 422),
    ({"blend": "3:0,4:1"}, "invalid_option", 422),
    ({"blend": "3,4"}, "invalid_option", 422),
    ({"style": "3", "blend": "3:1,4:1"}, "invalid_option", 422),
    ({"style": "3", "style_image": TINY}, "invalid_option", 422),
    ({"background": "red"}, "invalid_option", 422),
    ({"background": "#ff0000,#00ff00,#0000ff"}, "invalid_option", 422),
    ({"framing": "circle"}, "invalid_option", 422),
    ({"size": "63"}, "invalid_option", 422),
    ({"size": "2049"}, "invalid_option", 422),
    ({"format": "jpeg"}, "invalid_option", 422),
    ({"colour": "#ffffff"}, "invalid_option", 422),
    ({"style_image": "not a file"}, "unsupported_image", 415),
    ({"style_image": Upload("s.txt", "text/plain", b"hello")}, "unsupported_image", 415),
    ({"image": None}, "missing_field", 422),
    ({"image": Upload("p.txt", "text/plain", b"hello")}, "unsupported_image", 415),
])
def test_bad_requests_are_refused_before_any_work(runner, feature, form, code, status):
    form = {"image": TINY} | form
    with pytest.raises(DomainError) as caught:
        runner.prepare({k: v for k, v in form.items() if v is not None}, feature)
    assert (caught.value.code, caught.value.status) == (code, status)


def test_style_models_missing_is_model_unavailable(feature, chelsea):
    settings = Settings(models_dir=str(MODELS_DIR), models="u2netp", warmup=False)
    registry = ModelRegistry(settings)
    registry.load()
    try:
        lone = PetAvatarRunner(registry, settings)
        assert not lone.available(feature)
        with pytest.raises(DomainError) as caught:
            lone.prepare({"image": png(chelsea), "style": "3"}, feature)
        assert caught.value.code == "model_unavailable"
    finally:
        registry.close()
