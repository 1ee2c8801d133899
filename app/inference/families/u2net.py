"""U^2-Net (u2net, u2netp): 320x320 RGB, ImageNet normalisation, first of 7 side outputs.

Matches rembg's U2netSession step for step (LANCZOS resize, divide by the image maximum, mean/std;
min-max the output, LANCZOS back to the photo size) so our masks equal rembg's for the same model.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 320
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(image: Image.Image, input_name: str = "input.1") -> dict[str, np.ndarray]:
    small = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    x = np.asarray(small, dtype=np.float32)
    x /= max(float(x.max()), 1e-6)
    x = (x - MEAN) / STD
    return {input_name: x.transpose(2, 0, 1)[np.newaxis].astype(np.float32, copy=False)}


def postprocess(outputs: list[np.ndarray], size: tuple[int, int]) -> Image.Image:
    pred = outputs[0][0, 0]
    lo, hi = float(pred.min()), float(pred.max())
    pred = (pred - lo) / max(hi - lo, 1e-12)
    mask = Image.fromarray((pred * 255).astype(np.uint8), mode="L")
    return mask.resize(size, Image.Resampling.LANCZOS)


def dummy_feeds(input_name: str = "input.1") -> dict[str, np.ndarray]:
    return {input_name: np.zeros((1, 3, SIZE, SIZE), dtype=np.float32)}
