"""Pillow's resize cut into bands that run in parallel threads, each band through both passes.

Pillow resamples on one core, and the exact LANCZOS reduction of a photo to a model's input
(which U^2-Net's masks are sensitive to: app/inference/families/u2net.py) is the largest step
before inference (~6 ms of a 1 MP cutout's ~10 ms before the model), while the other core
waits. Pillow resizes in two separable passes, rounding to 8 bits in between: one along the
width (each output column from the source columns around its centre) and one along the height.
Here the first pass runs as bands of its own output columns (or rows), each band a ``box``
resize along that one axis, so Pillow computes the filter positions and weights of the whole
pass; each band then goes through the second pass on its own, which along the other axis treats
every column (row) alike whatever the band. The bands join, once, into the very bytes of
``image.resize(size)`` (tests/test_resize.py). Pillow releases the GIL while it resamples, so
the bands really run at once.

The passes run in Pillow's order: width first, except that Pillow 13 and later go height first
when the height shrinks, by more than twice as many pixels as the width (python-pillow/Pillow#9549);
which rule this Pillow follows is asked once, of a tiny picture, at import.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from app.imaging.parallel import run_all

BANDS = 4 if (os.cpu_count() or 1) >= 4 else 2
MIN_SOURCE_PIXELS = 250_000  # below this a thread hand-off costs more than it saves
WIDTH, HEIGHT = "width", "height"

_pool = ThreadPoolExecutor(max_workers=BANDS - 1, thread_name_prefix="resize")


def resize(image: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    """``image.resize(size, resample)``, banded across threads where the picture is big enough to pay."""
    width, height = image.size
    out_w, out_h = size
    if width * height < MIN_SOURCE_PIXELS or size == image.size:
        return image.resize(size, resample)
    axes = [axis for axis, (old, new) in ((WIDTH, (width, out_w)), (HEIGHT, (height, out_h))) if old != new]
    if len(axes) == 2 and _HEIGHT_FIRST and out_h < height and height - out_h > 2 * (width - out_w):
        axes.reverse()
    first = axes[0]
    length, source = (out_w, width) if first == WIDTH else (out_h, height)
    edges = [length * k // BANDS for k in range(BANDS + 1)]
    # A band's borders go to Pillow in single precision: band only where they are exact there,
    # so that every band's filter centres are the whole pass's.
    if length < 2 * BANDS or any(float(np.float32(source * e / length)) * length != source * e for e in edges):
        return image.resize(size, resample)

    def band(a: int, b: int) -> Image.Image:
        lo, hi = source * a / length, source * b / length
        if first == WIDTH:
            part = image.resize((b - a, height), resample, box=(lo, 0, hi, height))
            return part.resize((b - a, out_h), resample) if out_h != height else part
        part = image.resize((width, b - a), resample, box=(0, lo, width, hi))
        return part.resize((out_w, b - a), resample) if out_w != width else part

    parts = run_all(_pool, [functools.partial(band, a, b) for a, b in zip(edges, edges[1:])])
    whole = Image.new(image.mode, size)
    for a, part in zip(edges, parts):
        whole.paste(part, (a, 0) if first == WIDTH else (0, a))
    return whole


def _pillow_goes_height_first() -> bool:
    """Whether this Pillow resizes a tall picture height first (Pillow 13+): one 8x64 probe."""
    probe = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 8), dtype=np.uint8))
    lanczos = Image.Resampling.LANCZOS
    whole = np.asarray(probe.resize((4, 4), lanczos))
    return np.array_equal(whole, np.asarray(probe.resize((8, 4), lanczos).resize((4, 4), lanczos)))


_HEIGHT_FIRST = _pillow_goes_height_first()
