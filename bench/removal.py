"""Time smart removal on 1 MP and 12 MP photos (astronaut and chelsea, scaled up), with a small
area (a brush dot 100 px across, the same pixels on every photo) and a large one (a dot a
quarter of the photo). The crop strategy should make the small area cost on 12 MP about what
it costs on 1 MP: the goal is a ratio of at most 2.

Two times per case, medians of --repeat runs:
  removal     the area parsed (strokes JSON -> grown mask) and filled into the decoded photo:
              the work removal adds between decoding and encoding
  end to end  the runner's prepare + run: JPEG decode and PNG encode included, which grow
              with the photo whatever the area

    .venv/bin/python bench/removal.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.features.catalogue import Catalogue  # noqa: E402
from app.imaging import areas, inpaint  # noqa: E402
from app.runners.base import Upload  # noqa: E402
from app.runners.removal import RemovalRunner  # noqa: E402
from app.settings import Settings  # noqa: E402

SMALL_PX = 100


def scaled(photo: np.ndarray, megapixels: float) -> np.ndarray:
    height, width = photo.shape[:2]
    scale = (megapixels * 1e6 / (width * height)) ** 0.5
    return cv2.resize(photo, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_CUBIC)


def dot(size: tuple[int, int], area: str) -> bytes:
    width, height = size
    brush = SMALL_PX if area == "small" else round(0.56 * min(size))  # ~0.25 of a square photo
    return json.dumps([{"points": [[width // 2, height // 2]], "width": brush}]).encode()


def median_seconds(fn, repeat: int) -> float:
    fn()  # warm caches and thread pools
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    settings = Settings()
    runner = RemovalRunner(None, settings)
    feature = Catalogue.load().get("removal")

    def removal(image: Image.Image, strokes: bytes) -> None:
        mask = areas.parse_area("strokes", strokes, image.size, max_share=0.5, dilate=True,
                                max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
        inpaint.fill_image(image, mask, feather=areas.dilation_radius(image.size))  # same work each time

    def end_to_end(jpeg: bytes, strokes: bytes) -> None:
        form = {"image": Upload("p.jpg", "image/jpeg", jpeg), "strokes": strokes.decode()}
        asyncio.run(runner.run(runner.prepare(form, feature)))

    print(f"{'photo':<10} {'size':>11} {'area':>6} {'share':>6} {'removal':>9} {'end to end':>11}")
    small = {}
    for name in ("astronaut", "chelsea"):
        for megapixels in (1, 12):
            photo = scaled(getattr(data, name)(), megapixels)
            image = Image.fromarray(photo)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=92)
            jpeg = buffer.getvalue()
            for area in ("small", "large"):
                strokes = dot(photo.shape[1::-1], area)
                share = np.count_nonzero(areas.parse_area(
                    "strokes", strokes, photo.shape[1::-1], max_share=1, dilate=False,
                    max_bytes=1 << 30, max_pixels=1 << 30)) / (photo.shape[0] * photo.shape[1])
                fill_s = median_seconds(lambda: removal(image, strokes), args.repeat)
                total_s = median_seconds(lambda: end_to_end(jpeg, strokes), args.repeat)
                if area == "small":
                    small[name, megapixels] = (fill_s, total_s)
                size = f"{photo.shape[1]}x{photo.shape[0]}"
                print(f"{name:<10} {size:>11} {area:>6} {share:>6.1%} {fill_s * 1e3:>7.1f}ms {total_s * 1e3:>9.1f}ms")
    for name in ("astronaut", "chelsea"):
        (fill_1, total_1), (fill_12, total_12) = small[name, 1], small[name, 12]
        print(f"{name}: 12 MP small / 1 MP small = {fill_12 / fill_1:.2f} (removal, goal <= 2), "
              f"{total_12 / total_1:.2f} (end to end)")


if __name__ == "__main__":
    main()
