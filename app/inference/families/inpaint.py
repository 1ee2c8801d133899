"""Learned inpainting with the LaMa / MI-GAN export signature: image and mask in, image out.

One fixed square size (the manifest's ``input_size``). A crop from app/imaging/inpaint.py is
scaled to fit that square keeping its shape, padded by reflection (the padding is known
context, mask 0), and the model's answer is cut and scaled back. The contract an operator's
file must meet is in docs/models-inpainting.md.
"""

from __future__ import annotations

import cv2
import numpy as np

INPUTS = ("image", "mask")


def preprocess(image: np.ndarray, hole: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """RGB uint8 crop + uint8 hole (255 = fill) -> ``image`` [1,3,S,S] 0..1 with the hole
    zeroed (models that mask their input themselves do not mind) and ``mask`` [1,1,S,S] 1 = fill."""
    height, width = hole.shape
    fit_w, fit_h = _fitted(width, height, size)
    image = cv2.resize(image, (fit_w, fit_h), interpolation=cv2.INTER_LINEAR)
    hole = cv2.resize(hole, (fit_w, fit_h), interpolation=cv2.INTER_LINEAR) > 0
    pad = dict(top=0, bottom=size - fit_h, left=0, right=size - fit_w)
    image = cv2.copyMakeBorder(image, **pad, borderType=cv2.BORDER_REFLECT_101)
    hole = cv2.copyMakeBorder(hole.view(np.uint8), **pad, borderType=cv2.BORDER_CONSTANT, value=0).view(bool)
    x = image.astype(np.float32) / 255.0
    x[hole] = 0.0
    return {
        "image": x.transpose(2, 0, 1)[np.newaxis].copy(),
        "mask": hole.astype(np.float32)[np.newaxis, np.newaxis],
    }


def postprocess(outputs: list[np.ndarray], shape: tuple[int, int], size: int) -> np.ndarray:
    """The first output [1,3,S,S] 0..1 -> an RGB uint8 crop of ``shape`` (height, width)."""
    height, width = shape
    fit_w, fit_h = _fitted(width, height, size)
    y = outputs[0][0, :, :fit_h, :fit_w].transpose(1, 2, 0)
    rgb = np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)
    if (fit_h, fit_w) != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
    return rgb


def _fitted(width: int, height: int, size: int) -> tuple[int, int]:
    scale = size / max(width, height)
    return min(size, max(1, round(width * scale))), min(size, max(1, round(height * scale)))
