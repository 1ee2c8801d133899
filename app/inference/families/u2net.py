"""U^2-Net (u2net, u2netp): 320x320 RGB, ImageNet normalisation, first of 7 side outputs.

Follows rembg's U2netSession step for step (LANCZOS resize of every pixel to 320x320, divide by
the image maximum, mean/std; min-max the output) so our masks match rembg's for the same model.
Shortcuts on the way in were measured and rejected (docs/performance.md): the model's output is
sensitive enough to its input that a JPEG decoded at reduced DCT scale (Pillow's ``draft``) or a
box pre-reduction (``reducing_gap``) drops the mask IoU against rembg to 0.89-0.99 on some
12 MP photos, against >= 0.996 for the exact resize here (~60 ms more at 12 MP), which
app/imaging/resize.py spreads over the cores without changing a byte.

One departure on the way out: ``postprocess_array`` scales the 320x320 matte up with OpenCV's
bicubic filter (multi-threaded, ~10 ms at 12 MP) instead of Pillow's LANCZOS (~100 ms, one
thread), once, straight to the size the result needs; the IoU with LANCZOS is >= 0.999.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from app.imaging.pixels import pixels
from app.imaging.resize import resize

SIZE = 320
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
UPSCALE = cv2.INTER_CUBIC
BATCH_AGNOSTIC = True  # a stack of inputs gives each row's single-run output (app/inference/batch_dim.py)


def preprocess(image: Image.Image, input_name: str = "input.1") -> dict[str, np.ndarray]:
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert() copies even RGB -> RGB
    small = resize(rgb, (SIZE, SIZE), Image.Resampling.LANCZOS)  # Pillow's bytes, on every core
    planes = cv2.split(pixels(small))[:3]  # R, G, B out of Pillow's 4-byte pixels, without a copy first
    # rembg's float64 steps (divide by the maximum, subtract the mean, divide by the deviation, then
    # float32), done once for each of the 256 byte values and looked up per pixel: rembg's very input.
    top = max(int(plane.max()) for plane in planes)
    values = np.arange(256, dtype=np.float64) / max(top, 1e-6)
    tables = ((values - MEAN[:, np.newaxis]) / STD[:, np.newaxis]).astype(np.float32)  # one row per channel
    x = np.empty((1, 3, SIZE, SIZE), dtype=np.float32)
    for channel, (plane, table) in enumerate(zip(planes, tables)):
        cv2.LUT(plane, table, dst=x[0, channel])
    return {input_name: x}


def matte(outputs: list[np.ndarray]) -> np.ndarray:
    """The model's matte at its own 320x320 size, min-max normalised to uint8 (as rembg does)."""
    pred = outputs[0][0, 0]
    lo, hi = float(pred.min()), float(pred.max())
    return ((pred - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8)


def postprocess_array(outputs: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """The matte scaled to ``size`` (width, height) as a uint8 array, in one resize."""
    small = matte(outputs)
    if small.shape[::-1] == tuple(size):
        return small
    return cv2.resize(small, tuple(size), interpolation=UPSCALE)


def postprocess(outputs: list[np.ndarray], size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(postprocess_array(outputs, size))


def dummy_feeds(input_name: str = "input.1") -> dict[str, np.ndarray]:
    return {input_name: np.zeros((1, 3, SIZE, SIZE), dtype=np.float32)}
