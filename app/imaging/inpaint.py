"""Fill the area to remove, touching nothing else, at a cost set by the area and not the photo.

IOPaint's crop strategy: each separate part of the area is filled inside its own crop (its
bounding box plus a margin), scaled down when large so the fill runs at a bounded resolution,
and only the area's pixels are written back. A feathered edge runs *inside* the area, so every
pixel outside it is bit-identical to the input and a 12 MP photo with a small area costs about
what a 1 MP one does.

``plan`` and ``paste`` are shared by every filler: OpenCV's classical inpainting here (``fill``,
``fill_image``), a learned model in app/inference/families/inpaint.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from PIL import Image

Method = Literal["telea", "ns"]
FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
RADIUS = 5  # px around each filled pixel that cv2.inpaint looks at (at the working scale)
CLASSICAL_SIDE = 1024  # long side of a crop cv2.inpaint works on
CLASSICAL_HOLE = 100_000  # pixels cv2.inpaint fills per crop (its cost grows with them: ~0.3 s)
CLASSICAL_MARGIN = 32  # min px of context around a part: cv2.inpaint looks only RADIUS px away
MAX_PARTS = 32  # more separate parts than this (a noisy mask) are filled as one crop


@dataclass(frozen=True)
class Patch:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the crop in the photo
    image: np.ndarray  # the crop's RGB, scaled down as `plan` bounds it
    hole: np.ndarray  # uint8 at the same scale, 255 = fill


def fill_image(image: Image.Image, mask: np.ndarray, *, method: Method = "telea", feather: int = 1) -> Image.Image:
    """``fill`` on a decoded RGB photo, in place: only the part any crop can reach is turned
    into an array and back (a whole 12 MP photo costs ~0.1 s just to convert both ways)."""
    x0, y0, x1, y1 = box = reach(mask, CLASSICAL_MARGIN)
    region = np.asarray(image.crop(box))
    image.paste(Image.fromarray(fill(region, mask[y0:y1, x0:x1], method=method, feather=feather)), (x0, y0))
    return image


def fill(photo: np.ndarray, mask: np.ndarray, *, method: Method = "telea", feather: int = 1) -> np.ndarray:
    """Classical inpainting (Telea or Navier-Stokes) of ``mask`` in an RGB uint8 ``photo``."""
    patches = plan(photo, mask, max_side=CLASSICAL_SIDE, max_hole=CLASSICAL_HOLE, min_margin=CLASSICAL_MARGIN)
    filled = [cv2.inpaint(p.image, p.hole, RADIUS, FLAGS[method]) for p in patches]
    return paste(photo, mask, patches, filled, feather=feather)


def reach(mask: np.ndarray, min_margin: int) -> tuple[int, int, int, int]:
    """The box every crop ``plan`` makes with ``min_margin`` lies in; planning on just this part
    of the photo gives the same crops."""
    height, width = mask.shape
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    return _grow_box((x, y, x + w, y + h), min_margin, width, height)


def plan(photo: np.ndarray, mask: np.ndarray, *, max_side: int, min_margin: int,
         max_hole: int | None = None) -> list[Patch]:
    """One crop per separate part of the area, parts whose crops would overlap sharing one.

    A crop is scaled down until its long side is at most ``max_side`` and, when given, until it
    holds at most ``max_hole`` pixels to fill.
    """
    height, width = mask.shape
    boxes = _merge([_grow_box(box, min_margin, width, height) for box in _parts(mask)])
    return [_patch(photo, mask, box, max_side, max_hole) for box in boxes]


def paste(photo: np.ndarray, mask: np.ndarray, patches: list[Patch], filled: list[np.ndarray], *,
          feather: int) -> np.ndarray:
    """Write the filled pixels back, only inside ``mask``; the outer ``feather`` px of the area
    blend from the original into the fill."""
    out = photo.copy()
    for patch, done in zip(patches, filled):
        x0, y0, x1, y1 = patch.box
        if done.shape[:2] != (y1 - y0, x1 - x0):
            done = cv2.resize(done, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
        hole = mask[y0:y1, x0:x1]
        region = out[y0:y1, x0:x1]
        edge = None
        if feather > 1:  # blend only the band that needs it: the inside is a plain copy
            depth = cv2.distanceTransform(hole.view(np.uint8), cv2.DIST_L2, 3)
            edge = hole & (depth < feather)
            alpha = (depth[edge] / np.float32(feather))[:, None]
            blended = np.rint(region[edge] * (1 - alpha) + done[edge] * alpha).astype(np.uint8)
        cv2.copyTo(done, hole.view(np.uint8), region)  # in place, only where hole
        if edge is not None:
            region[edge] = blended
    return out


def _parts(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes of the area's separate parts, found on a copy reduced to <= 512 px (each small
    pixel says whether its block holds any area pixel), so a 12 MP mask costs milliseconds."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    step = -(-max(w, h) // 512)
    rows, cols = -(-h // step), -(-w // step)
    blocks = np.zeros((rows * step, cols * step), bool)
    blocks[:h, :w] = mask[y:y + h, x:x + w]
    coarse = blocks.reshape(rows, step, cols, step).any(axis=(1, 3))
    count, _, stats, _ = cv2.connectedComponentsWithStats(coarse.view(np.uint8), connectivity=8)
    if count - 1 > MAX_PARTS:
        return [(x, y, x + w, y + h)]
    return [(x + px * step, y + py * step, min(x + w, x + (px + pw) * step), min(y + h, y + (py + ph) * step))
            for px, py, pw, ph, _ in stats[1:]]


def _patch(photo: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], max_side: int,
           max_hole: int | None) -> Patch:
    x0, y0, x1, y1 = box
    image = photo[y0:y1, x0:x1]
    hole = mask[y0:y1, x0:x1].view(np.uint8) * np.uint8(255)
    scale = max_side / max(x1 - x0, y1 - y0)
    if max_hole:
        scale = min(scale, (max_hole / max(1, np.count_nonzero(hole))) ** 0.5)
    if scale < 1:
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # any full-size area pixel under a small pixel makes it a hole, so no trace survives
        hole = np.where(cv2.resize(hole, size, interpolation=cv2.INTER_AREA) > 0, np.uint8(255), np.uint8(0))
    return Patch(box=box, image=np.ascontiguousarray(image), hole=hole)


def _grow_box(box, min_margin: int, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    margin = max(min_margin, max(x1 - x0, y1 - y0) // 2)
    return max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin)


def _merge(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Union overlapping boxes until none overlap, so no crop holds another part's pixels."""
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes
