"""Smart cutout end to end, through a real server process, on real photos and real models."""

from __future__ import annotations

import io
import os
import struct
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import MODELS
from tests.photos import alpha_of, encode, iou, jpeg, photo

os.environ.setdefault("U2NET_HOME", MODELS)


@pytest.fixture(scope="module")
def rembg_u2netp():
    os.environ["U2NET_HOME"] = MODELS
    from rembg import new_session, remove

    session = new_session("u2netp", providers=["CPUExecutionProvider"])
    return lambda data: remove(data, session=session)


def cutout(server, data: bytes, user: str, filename="photo.jpg", **fields) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/operations/cutout",
        files={"image": (filename, data, "image/jpeg")},
        data={k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()},
        headers={"X-User-Id": user},
        timeout=120,
    )


def balance(server, user: str) -> int:
    return httpx.get(f"{server.url}/v1/me/balance", headers={"X-User-Id": user}).json()["available"]


@pytest.mark.parametrize("name", ["chelsea", "astronaut"])
def test_cutout_matches_rembg(live_server, rembg_u2netp, name):
    data = jpeg(name)
    response = cutout(live_server, data, user=f"match-{name}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-operation-id"]
    assert response.headers["x-tokens-charged"] == "31000"
    assert response.headers["x-tokens-remaining"] == "469000"
    ours = alpha_of(response.content)
    theirs = alpha_of(rembg_u2netp(data))
    assert ours.shape == theirs.shape == photo(name).size[::-1]
    assert iou(ours, theirs) >= 0.99
    assert 0.05 < (ours > 128).mean() < 0.95  # a real subject, not an empty or full matte
    # Transparent pixels carry no trace of the old background.
    rgba = np.asarray(Image.open(io.BytesIO(response.content)))
    assert not rgba[rgba[:, :, 3] == 0][:, :3].any()


def test_mask_only_is_the_greyscale_matte(live_server):
    full = alpha_of(cutout(live_server, jpeg("chelsea"), user="mask").content)
    response = cutout(live_server, jpeg("chelsea"), user="mask", mask_only=True)
    mask = Image.open(io.BytesIO(response.content))
    assert mask.mode == "L" and mask.size == photo("chelsea").size
    assert np.abs(np.asarray(mask, dtype=int) - full).max() <= 1


def test_background_colour_fills_the_transparency(live_server):
    alpha = alpha_of(cutout(live_server, jpeg("chelsea"), user="bg").content)
    response = cutout(live_server, jpeg("chelsea"), user="bg", background="#00ff00")
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "RGB"
    pixels = np.asarray(image)
    assert (pixels[alpha == 0] == [0, 255, 0]).all()
    subject = pixels[alpha == 255].astype(int)
    original = np.asarray(photo("chelsea"))[alpha == 255].astype(int)
    assert np.abs(subject - original).mean() < 6  # the subject keeps its own colours (JPEG noise only)


def test_preview_is_at_most_a_quarter_megapixel(live_server):
    big = photo("astronaut").resize((1600, 1600))
    response = cutout(live_server, encode(big), user="preview", size="preview")
    image = Image.open(io.BytesIO(response.content))
    assert image.width * image.height <= 250_000
    assert abs(image.width - image.height) <= 1
    assert 0.05 < (np.asarray(image)[:, :, 3] > 128).mean() < 0.95


def test_webp_output_keeps_alpha(live_server):
    png_alpha = alpha_of(cutout(live_server, jpeg("chelsea"), user="webp").content)
    response = cutout(live_server, jpeg("chelsea"), user="webp", format="webp")
    assert response.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "WEBP" and image.mode == "RGBA"
    assert iou(np.asarray(image)[:, :, 3], png_alpha) >= 0.99


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_an_upload_with_transparency_keeps_it(live_server, fmt):
    """A PNG that already has an alpha channel: the result is the matte within that alpha, and
    the colour under it is the upload's own."""
    rgba = photo("chelsea").convert("RGBA")
    alpha_in = np.full((rgba.height, rgba.width), 255, np.uint8)
    alpha_in[:, : rgba.width // 3] = 0  # the left third was already cut away
    alpha_in[:, rgba.width // 3 : rgba.width // 2] = 128  # then a half-transparent band
    rgba.putalpha(Image.fromarray(alpha_in))
    plain = alpha_of(cutout(live_server, encode(rgba.convert("RGB"), "PNG"), user=f"rgba-{fmt}").content)
    response = cutout(live_server, encode(rgba, "PNG"), user=f"rgba-{fmt}", format=fmt)
    assert response.status_code == 200, response.text
    out = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))
    assert np.array_equal(out[:, :, 3], np.minimum(plain, alpha_in)) if fmt == "png" else \
        np.abs(out[:, :, 3].astype(int) - np.minimum(plain, alpha_in)).max() <= 1
    kept = out[:, :, 3] > 0
    if fmt == "png":  # lossless: nothing under full transparency, the subject's own colours
        assert not out[~kept][:, :3].any()
        assert np.array_equal(out[:, :, :3][kept], np.asarray(rgba)[:, :, :3][kept])
    assert 0.1 < kept.mean() < 0.6


def test_model_choice_runs_that_model(live_server):
    small = alpha_of(cutout(live_server, jpeg("astronaut"), user="model").content)
    response = cutout(live_server, jpeg("astronaut"), user="model", model="u2net")
    assert response.status_code == 200, response.text
    big = alpha_of(response.content)
    assert 0.8 < iou(small, big) < 0.995  # same subject, visibly different matte
    record = httpx.get(f"{live_server.url}/v1/operations/{response.headers['x-operation-id']}",
                       headers={"X-User-Id": "model"}).json()
    assert record["model"] == "u2net"


def test_exif_orientation_6_comes_back_upright(live_server):
    upright = photo("chelsea")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a phone held sideways stores
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = cutout(live_server, encode(stored, "JPEG", quality=92, exif=exif), user="exif")
    straight = cutout(live_server, jpeg("chelsea"), user="exif")
    a, b = alpha_of(rotated.content), alpha_of(straight.content)
    assert a.shape == b.shape == (upright.height, upright.width)
    assert iou(a, b) >= 0.97


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


BAD_INPUTS = {
    "empty body": (dict(content=b""), 400, "empty_body"),
    "text named .jpg": (dict(files={"image": ("x.jpg", b"hello, I am text\n" * 20, "image/jpeg")}), 415, "unsupported_image"),
    "truncated jpeg": (dict(files={"image": ("t.jpg", None, "image/jpeg")}), 415, "unsupported_image"),
    "50k x 50k png header": (dict(files={"image": ("bomb.png", png_declaring(50_000, 50_000), "image/png")}), 413, "image_too_large"),
    "25 MB upload": (dict(files={"image": ("big.jpg", b"\xff" * (25 * 1024 * 1024), "image/jpeg")}), 413, "image_too_large"),
    "unknown model": (dict(files={"image": ("c.jpg", None, "image/jpeg")}, data={"model": "nope"}), 422, "model_unavailable"),
    "unknown option value": (dict(files={"image": ("c.jpg", None, "image/jpeg")}, data={"format": "gif"}), 422, "invalid_option"),
    "unknown option": (dict(files={"image": ("c.jpg", None, "image/jpeg")}, data={"sharpen": "yes"}), 422, "invalid_option"),
    "missing image": (dict(data={"format": "png"}), 422, "missing_field"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_problem_that_costs_nothing(live_server, case):
    kwargs, status, code = BAD_INPUTS[case]
    kwargs = {k: (dict(v) if isinstance(v, dict) else v) for k, v in kwargs.items()}
    if "files" in kwargs:
        name, data, ctype = kwargs["files"]["image"]
        if data is None:
            data = jpeg("chelsea")[:4000] if case == "truncated jpeg" else jpeg("chelsea")
        kwargs["files"] = {"image": (name, data, ctype)}
    user = f"bad-{case.replace(' ', '-')}"
    before = balance(live_server, user)
    response = httpx.post(f"{live_server.url}/v1/operations/cutout", headers={"X-User-Id": user},
                          timeout=60, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code and problem["status"] == status and problem["detail"]
    assert "Traceback" not in response.text
    assert balance(live_server, user) == before == 500_000
    assert httpx.get(f"{live_server.url}/healthz").status_code == 200
    assert cutout(live_server, jpeg("chelsea"), user=user).status_code == 200


def test_metrics_count_the_cutout(live_server):
    cutout(live_server, jpeg("chelsea"), user="metrics")
    text = httpx.get(f"{live_server.url}/metrics").text
    line = next(l for l in text.splitlines()
                if l.startswith('trialzone_operations_total{feature="cutout",model="u2netp",status="succeeded"}'))
    assert float(line.split()[-1]) >= 1
    assert "trialzone_inference_seconds_count" in text
    assert "trialzone_inference_queue_depth" in text
