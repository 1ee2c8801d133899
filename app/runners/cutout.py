"""Smart cutout: the subject on transparency (or a colour), or just its matte."""

from __future__ import annotations

import asyncio
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import anyio.to_thread
import cv2
import msgspec
import numpy as np
from PIL import Image

from app.imaging.decode import decode
from app.imaging.encode import CONTENT_TYPES, encode
from app.imaging.png import encode_png_rows
from app.inference.families import CUTOUT_FAMILIES
from app.inference.registry import ModelRegistry
from app.runners.base import Form, Prepared, Result, parse_options, request_hash, require_image
from app.settings import Settings

HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6})$")


class CutoutOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    model: str | None = None
    format: Literal["png", "webp"] = "png"
    mask_only: bool = False
    background: str | None = None  # "#rrggbb": fill instead of transparency
    size: Literal["full", "preview"] = "full"

    def __post_init__(self):
        if self.background is not None and not HEX_COLOUR.match(self.background):
            raise ValueError("background must be a hex colour like #1a2b3c")


def parse_colour(value: str) -> tuple[int, int, int]:
    hex6 = HEX_COLOUR.match(value).group(1)
    return tuple(int(hex6[i : i + 2], 16) for i in (0, 2, 4))


# Decode + preprocess, started by ``prepare`` (a thread per core: more would only take turns).
_LOADERS = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="cutout-load")


class CutoutRunner:
    asynchronous = False  # answers in the request

    def __init__(self, registry: ModelRegistry, settings: Settings):
        self.registry = registry
        self.settings = settings

    def available(self, feature) -> bool:
        return bool(self.registry.names("cutout"))

    def models(self, feature) -> list[str]:
        return self.registry.names("cutout")

    def model_for(self, feature, requested: str | None) -> str:
        if requested:
            return requested
        cutouts = self.registry.names("cutout")
        return feature.model if feature.model in cutouts else (cutouts[0] if cutouts else feature.model)

    def prepare(self, form: Form, feature) -> Prepared:
        options = parse_options(form, CutoutOptions, skip=("image",))
        upload, image = require_image(form, self.settings)
        model = self.model_for(feature, options.model)
        loaded = self.registry.get(model, task="cutout")  # 422 model_unavailable before any token is held
        recorded = msgspec.to_builtins(options) | {"model": model}
        # Decoding starts now, in the background, while the operation is recorded and its tokens
        # held (a few database round trips); ``run`` picks the result up.
        decoded = _LOADERS.submit(self._load, image, options, CUTOUT_FAMILIES[loaded.spec.family],
                                  loaded.input_names[0])
        return Prepared(
            model=model,
            options=recorded,
            request_hash=request_hash(feature.name, recorded, upload.data),
            payload=(image, options, decoded),
            input_bytes=upload.data,
            input_type=upload.content_type,
        )

    async def run(self, prepared: Prepared) -> Result:
        image, options, decoded = prepared.payload
        model = self.registry.get(prepared.model)
        family = CUTOUT_FAMILIES[model.spec.family]
        photo, feeds = await asyncio.wrap_future(decoded)
        if _transparent(options):
            # The photo's pixels as an array (one copy out of Pillow, ~50 ms at 12 MP) while the model
            # runs or waits in line, instead of after it.
            pixels = asyncio.ensure_future(anyio.to_thread.run_sync(np.asarray, photo))
            try:
                outputs = await model.run(feeds)
            finally:
                await asyncio.wait([pixels])
            pixels = pixels.result()
        else:
            pixels = None
            outputs = await model.run(feeds)
        body = await anyio.to_thread.run_sync(self._finish, photo, pixels, outputs, options, family)
        content_type = CONTENT_TYPES[options.format]
        return Result(body=body, content_type=content_type, model=prepared.model,
                      meta={"width": photo.width, "height": photo.height})

    def _photo(self, image: Image.Image, options: CutoutOptions) -> Image.Image:
        limit = self.settings.preview_pixels if options.size == "preview" else None
        draft = None
        if limit:
            scale = (limit / (image.width * image.height)) ** 0.5
            draft = (int(image.width * scale) + 1, int(image.height * scale) + 1)
        photo = decode(image, draft_to=draft)
        if limit and photo.width * photo.height > limit:
            scale = (limit / (photo.width * photo.height)) ** 0.5
            photo = photo.resize((max(1, int(photo.width * scale)), max(1, int(photo.height * scale))),
                                 Image.Resampling.LANCZOS, reducing_gap=3.0)
        return photo

    def _load(self, image: Image.Image, options: CutoutOptions, family, input_name: str):
        photo = self._photo(image, options)
        return photo, family.preprocess(photo, input_name)

    def _finish(self, photo: Image.Image, pixels: np.ndarray | None, outputs, options: CutoutOptions,
                family) -> bytes:
        mask = family.postprocess_array(outputs, photo.size)  # resized once, as a uint8 array
        if pixels is not None and options.format == "png":
            # Subject on transparency, the common case: RGBA rows are composed strip by strip inside
            # the PNG writer's threads; the whole RGBA picture never exists.
            rgb, alpha = _rgb_alpha(pixels, mask)
            height, width = alpha.shape
            return encode_png_rows(height, width, 4, lambda a, b: cutout_rows(rgb[a:b], alpha[a:b]))
        return encode(compose(photo, mask, options), options.format)


def _transparent(options: CutoutOptions) -> bool:
    return not options.mask_only and not options.background


def _rgb_alpha(pixels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if pixels.shape[2] == 4:  # an input that already had transparency keeps it
        return pixels[:, :, :3], np.minimum(mask, pixels[:, :, 3])
    return pixels, mask


def cutout_rows(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGBA rows: straight colour where the matte is non-zero, all zero where it is zero."""
    rgb = np.ascontiguousarray(rgb)
    return cv2.merge([cv2.bitwise_and(rgb, rgb, mask=alpha), np.ascontiguousarray(alpha)])


def compose(photo: Image.Image, mask: Image.Image | np.ndarray, options: CutoutOptions) -> Image.Image | np.ndarray:
    """The matte alone, the subject on a colour, or the subject on transparency.

    Transparency keeps straight (unpremultiplied) colour where the matte is partial, so edges
    show no dark fringe on any background, and zeroes RGB where it is fully transparent, so no
    trace of the old background ships in the file (and those areas compress to nothing).
    """
    alpha = np.asarray(mask)
    if photo.mode == "RGBA":  # an input that already had transparency keeps it
        alpha = np.minimum(alpha, np.asarray(photo.getchannel("A")))
    if options.mask_only:
        return alpha
    if options.background:
        canvas = Image.new("RGB", photo.size, parse_colour(options.background))
        canvas.paste(photo.convert("RGB"), (0, 0), Image.fromarray(alpha))
        return canvas
    pixels = np.asarray(photo if photo.mode in ("RGB", "RGBA") else photo.convert("RGB"))
    return cutout_rows(pixels[:, :, :3], alpha)
