"""The area a user wants removed, as a boolean mask of the photo's size (True = remove).

It comes as exactly one of three things, each checked against the photo's size before any token
is held:

* ``mask``: an image, white = remove, any size (stretched to the photo, bilinear, then
  thresholded at half); transparent pixels count as black, so a brush layer exported as a
  transparent PNG works as it is.
* ``strokes``: JSON ``[{"points": [[x, y], ...], "width": px}, ...]``, polylines in the photo's
  pixel coordinates (0 <= x <= width, 0 <= y <= height) with a round brush ``width`` px across.
* ``boxes``: JSON ``[[x0, y0, x1, y1], ...]``, corners in pixel coordinates with
  0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height; a box covers the pixels it touches.

Coordinates are those of the upright photo, after its EXIF orientation is applied.
"""

from __future__ import annotations

import math
from typing import Annotated

import cv2
import msgspec
import numpy as np
from PIL import ExifTags, Image

from app.errors import (
    AreaEmpty, AreaTooLarge, ImageTooLarge, InvalidBoxes, InvalidMask, InvalidStrokes, UnsupportedImage,
)
from app.imaging.decode import decode, open_image

KINDS = ("mask", "strokes", "boxes")
MAX_JSON_BYTES = 256 * 1024

Size = tuple[int, int]  # (width, height)
Coordinate = Annotated[float, msgspec.Meta(ge=0)]


class Stroke(msgspec.Struct, frozen=True):
    points: Annotated[list[tuple[Coordinate, Coordinate]], msgspec.Meta(min_length=1)]
    width: Annotated[float, msgspec.Meta(gt=0)]


Box = tuple[Coordinate, Coordinate, Coordinate, Coordinate]


def upright_size(image: Image.Image) -> Size:
    """The size the photo has once its EXIF orientation is applied, read from the header only.

    A PNG's eXIf chunk may sit after the pixels; Pillow would decode everything to find it, so
    only one seen in the header counts here (the runner re-checks the size after decoding).
    """
    if image.format == "PNG" and "exif" not in image.info:
        return image.size
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def dilation_radius(size: Size) -> int:
    """How far the area grows by default: object edges (halo, shadow, JPEG ringing) leak otherwise."""
    return max(3, round(0.005 * max(size)))


def parse_area(kind: str, data: bytes, size: Size, *, max_share: float, dilate: bool,
               max_bytes: int, max_pixels: int) -> np.ndarray:
    """The area as a (height, width) bool mask, grown by ``dilation_radius`` when ``dilate``."""
    if kind == "mask":
        mask = _from_mask(data, size, max_bytes=max_bytes, max_pixels=max_pixels)
    elif kind == "strokes":
        mask = _from_strokes(_decode_json(data, list[Stroke], InvalidStrokes), size)
    else:
        mask = _from_boxes(_decode_json(data, list[Box], InvalidBoxes), size)
    covered = np.count_nonzero(mask)
    if covered == 0:
        raise AreaEmpty(f"the {kind} cover no pixel of the photo" if kind != "mask" else "the mask has no white pixel")
    share = covered / mask.size
    if share > max_share:
        raise AreaTooLarge(f"the area covers {share:.0%} of the photo; the limit is {max_share:.0%}",
                           share=round(share, 4), limit=max_share)
    return grow(mask, dilation_radius(size)) if dilate else mask


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilate by a disc of ``radius`` px, working only on the area's bounding box (cheap at 12 MP)."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0:
        return mask
    height, width = mask.shape
    x0, y0 = max(0, x - radius), max(0, y - radius)
    x1, y1 = min(width, x + w + radius), min(height, y + h + radius)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    grown = mask.copy()
    grown[y0:y1, x0:x1] = cv2.dilate(mask[y0:y1, x0:x1].view(np.uint8), kernel).view(bool)
    return grown


def _from_mask(data: bytes, size: Size, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    try:
        image = decode(open_image(data, max_bytes=max_bytes, max_pixels=max_pixels))
    except UnsupportedImage as exc:
        raise InvalidMask(f"the mask: {exc.detail}", field="mask") from None
    except ImageTooLarge as exc:
        raise ImageTooLarge(f"the mask: {exc.detail}", field="mask", **exc.extra) from None
    grey = np.asarray(image.convert("L"))
    if image.mode == "RGBA":
        grey = (grey.astype(np.uint16) * np.asarray(image.getchannel("A")) // 255).astype(np.uint8)
    if grey.shape[::-1] != size:
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR)
    return grey >= 128


def _decode_json(data: bytes, schema, error):
    if len(data) > MAX_JSON_BYTES:
        raise error(f"{len(data):,} bytes of JSON; the limit is {MAX_JSON_BYTES:,}")
    try:
        return msgspec.json.decode(data, type=schema)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass: wrong shape or type
        raise error(str(exc)) from None


def _from_strokes(strokes: list[Stroke], size: Size) -> np.ndarray:
    width, height = size
    canvas = np.zeros((height, width), np.uint8)
    for i, stroke in enumerate(strokes):
        if stroke.width > max(size):
            raise InvalidStrokes(f"stroke {i} is {stroke.width:g} px wide; the photo is {width}x{height}")
        if any(x > width or y > height for x, y in stroke.points):
            raise InvalidStrokes(f"stroke {i} has a point outside the {width}x{height} photo")
        points = np.rint(stroke.points).astype(np.int32)
        points = np.minimum(points, (width - 1, height - 1))
        brush = max(1, round(stroke.width))
        if len(points) == 1:
            cv2.circle(canvas, tuple(int(v) for v in points[0]), brush // 2, 1, thickness=-1)
        else:
            cv2.polylines(canvas, [points], isClosed=False, color=1, thickness=brush)
    return canvas.view(bool)


def _from_boxes(boxes: list[Box], size: Size) -> np.ndarray:
    width, height = size
    mask = np.zeros((height, width), bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        if not (x0 < x1 <= width and y0 < y1 <= height):
            raise InvalidBoxes(f"box {i} is not 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}")
        mask[math.floor(y0):math.ceil(y1), math.floor(x0):math.ceil(x1)] = True
    return mask
