"""Smart cutout: the subject on transparency (or a colour), or just its matte."""

from __future__ import annotations

import re
from typing import Literal

import anyio.to_thread
import msgspec
import numpy as np
from PIL import Image

from app.imaging.decode import decode
from app.imaging.encode import CONTENT_TYPES, encode
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
        self.registry.get(model, task="cutout")  # 422 model_unavailable before any token is held
        recorded = msgspec.to_builtins(options) | {"model": model}
        return Prepared(
            model=model,
            options=recorded,
            request_hash=request_hash(feature.name, recorded, upload.data),
            payload=(image, options),
            input_bytes=upload.data,
            input_type=upload.content_type,
        )

    async def run(self, prepared: Prepared) -> Result:
        image, options = prepared.payload
        model = self.registry.get(prepared.model)
        family = CUTOUT_FAMILIES[model.spec.family]
        photo, feeds = await anyio.to_thread.run_sync(self._load, image, options, family, model.input_names[0])
        outputs = await model.run(feeds)
        body = await anyio.to_thread.run_sync(self._finish, photo, outputs, options, family)
        content_type = CONTENT_TYPES[options.format]
        return Result(body=body, content_type=content_type, model=prepared.model,
                      meta={"width": photo.width, "height": photo.height})

    def _load(self, image: Image.Image, options: CutoutOptions, family, input_name: str):
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
        return photo, family.preprocess(photo, input_name)

    def _finish(self, photo: Image.Image, outputs, options: CutoutOptions, family) -> bytes:
        mask = family.postprocess(outputs, photo.size)
        return encode(compose(photo, mask, options), options.format)


def compose(photo: Image.Image, mask: Image.Image, options: CutoutOptions) -> Image.Image | np.ndarray:
    """The matte alone, the subject on a colour, or the subject on transparency.

    Transparency keeps straight (unpremultiplied) colour where the matte is partial, so edges
    show no dark fringe on any background, and zeroes RGB where it is fully transparent, so no
    trace of the old background ships in the file (and those areas compress to nothing).
    """
    if photo.mode == "RGBA":  # an input that already had transparency keeps it
        mask = Image.fromarray(np.minimum(np.asarray(mask), np.asarray(photo.getchannel("A"))))
    if options.mask_only:
        return mask
    if options.background:
        canvas = Image.new("RGB", photo.size, parse_colour(options.background))
        canvas.paste(photo.convert("RGB"), (0, 0), mask)
        return canvas
    alpha = np.asarray(mask)
    rgba = np.empty((photo.height, photo.width, 4), dtype=np.uint8)
    rgba[:, :, :3] = np.asarray(photo.convert("RGB"))
    rgba[:, :, 3] = alpha
    rgba[alpha == 0, :3] = 0
    return rgba
