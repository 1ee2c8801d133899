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
from app.imaging.pixels import pixels
from app.imaging.png import encode_png_rows
from app.inference.families import CUTOUT_FAMILIES, matte_output
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
            result_type=CONTENT_TYPES[options.format],
        )

    async def run(self, prepared: Prepared) -> Result:
        image, options, decoded = prepared.payload
        model = self.registry.get(prepared.model)
        family = CUTOUT_FAMILIES[model.spec.family]
        photo, feeds = await asyncio.wrap_future(decoded)
        outputs = await model.run(feeds, matte_output(model.output_names))
        body = await anyio.to_thread.run_sync(self._finish, photo, outputs, options, family)
        return Result(body=body, content_type=prepared.result_type, model=prepared.model,
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

    def _finish(self, photo: Image.Image, outputs, options: CutoutOptions, family) -> bytes:
        mask = family.postprocess_array(outputs, photo.size)  # resized once, as a uint8 array
        if _transparent(options) and options.format == "png":
            # Subject on transparency, the common case: RGBA rows are composed strip by strip inside
            # the PNG writer's threads, from Pillow's own memory; the whole RGBA picture never exists.
            rgbx, alpha = _pixels_alpha(photo, mask)
            height, width = alpha.shape
            return encode_png_rows(height, width, 4, lambda a, b: cutout_rows(rgbx[a:b], alpha[a:b]))
        return encode(compose(photo, mask, options), options.format)


def _transparent(options: CutoutOptions) -> bool:
    return not options.mask_only and not options.background


def _pixels_alpha(photo: Image.Image, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo's 4-byte pixels (no copy of an RGB or RGBA photo) and the result's alpha: the
    matte, within any transparency the upload already had."""
    rgbx = pixels(photo if photo.mode in ("RGB", "RGBA") else photo.convert("RGB"))
    if photo.mode == "RGBA":
        return rgbx, np.minimum(mask, rgbx[:, :, 3])
    return rgbx, mask


def cutout_rows(rgbx: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGBA rows from 4-byte pixel rows (the 4th byte is ignored) and their alpha: straight colour
    where the alpha is non-zero, all zero where it is zero."""
    rows = cv2.bitwise_and(rgbx, rgbx, mask=alpha)
    cv2.insertChannel(alpha, rows, 3)
    return rows


def compose(photo: Image.Image, mask: Image.Image | np.ndarray, options: CutoutOptions) -> Image.Image | np.ndarray:
    """The matte alone, the subject on a colour, or the subject on transparency.

    Transparency keeps straight (unpremultiplied) colour where the matte is partial, so edges
    show no dark fringe on any background, and zeroes RGB where it is fully transparent, so no
    trace of the old background ships in the file (and those areas compress to nothing).
    """
    rgbx, alpha = _pixels_alpha(photo, np.asarray(mask))
    if options.mask_only:
        return alpha
    if options.background:
        canvas = Image.new("RGB", photo.size, parse_colour(options.background))
        canvas.paste(photo, (0, 0), Image.fromarray(alpha))  # Pillow pastes RGB or RGBA onto RGB
        return canvas
    return cutout_rows(rgbx, alpha)
