"""Real photos for tests: scikit-image's data images, encoded the way phones send them."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image
from skimage import data


@lru_cache
def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 92} if fmt == "JPEG" and not params else params))
    return out.getvalue()


def jpeg(name: str) -> bytes:
    return encode(photo(name), "JPEG")


def alpha_of(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.mode == "RGBA", image.mode
    return np.asarray(image)[:, :, 3]


def iou(a: np.ndarray, b: np.ndarray, threshold: int = 128) -> float:
    a, b = a >= threshold, b >= threshold
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
