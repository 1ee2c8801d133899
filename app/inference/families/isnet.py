"""ISNet (IMG.LY's DIS build): 1024x1024 baked into the graph.

Same steps as rembg's dis_custom session (divide by the image maximum, minus 0.5; min-max the
output) so masks agree with rembg's for the same weights.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 1024


def preprocess(image: Image.Image, input_name: str = "input") -> dict[str, np.ndarray]:
    small = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    x = np.asarray(small, dtype=np.float32)
    x = x / max(float(x.max()), 1e-6) - 0.5
    return {input_name: x.transpose(2, 0, 1)[np.newaxis].astype(np.float32, copy=False)}


def postprocess(outputs: list[np.ndarray], size: tuple[int, int]) -> Image.Image:
    pred = outputs[0][0, 0]
    lo, hi = float(pred.min()), float(pred.max())
    pred = (pred - lo) / max(hi - lo, 1e-12)
    mask = Image.fromarray((pred * 255).astype(np.uint8), mode="L")
    return mask.resize(size, Image.Resampling.LANCZOS)


def dummy_feeds(input_name: str = "input") -> dict[str, np.ndarray]:
    return {input_name: np.zeros((1, 3, SIZE, SIZE), dtype=np.float32)}


def postprocess_array(outputs: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """The matte at ``size`` as a uint8 array (what the cutout runner composes with)."""
    return np.asarray(postprocess(outputs, size))
