"""Smart removal: erase the area a user marked (mask, strokes or boxes) from a photo.

``classical`` (OpenCV inpainting) always works; a feature or request naming an installed
``task = "inpaint"`` model runs that model instead, through the registry like every model.
Everything the client can get wrong about the area is checked in ``prepare``, before any token
is held; the result is the photo's size, RGB, changed only inside the (grown) area.
"""

from __future__ import annotations

from typing import Literal

import anyio.to_thread
import msgspec
import numpy as np
from PIL import Image

from app.errors import AreaConflict, AreaMissing, InvalidMask, ModelUnavailable, UnsupportedImage
from app.imaging import areas, inpaint
from app.imaging.decode import decode
from app.imaging.encode import CONTENT_TYPES, encode
from app.inference.families import inpaint as learned
from app.inference.registry import ModelRegistry
from app.runners.base import Form, Prepared, Result, Upload, parse_options, request_hash, require_image
from app.settings import Settings

CLASSICAL = "classical"
LEARNED_MARGIN = 128  # px of context around each part for a model (IOPaint's default crop margin)


class RemovalOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    model: str | None = None  # "classical" or an installed inpainting model; default: the feature's
    method: inpaint.Method = "telea"  # classical only
    dilate: bool = True
    format: Literal["png", "webp"] = "png"  # png keeps every pixel outside the area exact


class RemovalRunner:
    asynchronous = False  # answers in the request

    def __init__(self, registry: ModelRegistry, settings: Settings, *, max_area_share: float = 0.5):
        self.registry = registry
        self.settings = settings
        self.max_area_share = max_area_share

    def available(self, feature) -> bool:
        """Classical inpainting needs no weights; a learned default needs its model loaded."""
        return feature.model in (None, CLASSICAL) or feature.model in self.registry.names("inpaint")

    def models(self, feature) -> list[str]:
        return [CLASSICAL, *self.registry.names("inpaint")]

    def prepare(self, form: Form, feature) -> Prepared:
        options = parse_options(form, RemovalOptions, skip=("image", *areas.KINDS))
        upload, image = require_image(form, self.settings)
        model = options.model or feature.model or CLASSICAL
        if model != CLASSICAL:
            _check_learned(self.registry.get(model, task="inpaint"))
        kind, data = _area_field(form)
        size = areas.upright_size(image)
        mask = areas.parse_area(
            kind, data, size, max_share=self.max_area_share, dilate=options.dilate,
            max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_pixels,
        )
        recorded = msgspec.to_builtins(options) | {"model": model, "area": kind}
        return Prepared(
            model=model,
            options=recorded,
            request_hash=request_hash(feature.name, recorded, upload.data, data),
            payload=(image, mask, options, size),
            input_bytes=upload.data,
            input_type=upload.content_type,
        )

    async def run(self, prepared: Prepared) -> Result:
        image, mask, options, size = prepared.payload
        feather = areas.dilation_radius(size) if options.dilate else 1
        if prepared.model == CLASSICAL:
            out = await anyio.to_thread.run_sync(self._classical, image, mask, options.method, feather)
        else:
            out = await self._learned(prepared.model, image, mask, feather)
        body = await anyio.to_thread.run_sync(encode, out, options.format)
        return Result(body=body, content_type=CONTENT_TYPES[options.format], model=prepared.model,
                      meta={"width": size[0], "height": size[1], "area_pixels": int(np.count_nonzero(mask))})

    def _classical(self, image: Image.Image, mask: np.ndarray, method: inpaint.Method, feather: int) -> Image.Image:
        return inpaint.fill_image(_decoded(image, mask), mask, method=method, feather=feather)

    async def _learned(self, name: str, image: Image.Image, mask: np.ndarray, feather: int) -> Image.Image:
        """Crops and tensors in a worker thread, the model behind its admission line, one crop
        at a time, then the paste back in a worker thread."""
        model = self.registry.get(name, task="inpaint")
        size = model.spec.input_size
        x0, y0, x1, y1 = box = inpaint.reach(mask, LEARNED_MARGIN)
        hole = mask[y0:y1, x0:x1]

        def plan():
            photo = _decoded(image, mask)
            region = np.asarray(photo.crop(box))
            patches = inpaint.plan(region, hole, max_side=size, min_margin=LEARNED_MARGIN)
            return photo, region, patches, [learned.preprocess(p.image, p.hole, size) for p in patches]

        photo, region, patches, feeds = await anyio.to_thread.run_sync(plan)
        filled = [learned.postprocess(await model.run(f), p.hole.shape, size) for p, f in zip(patches, feeds)]

        def finish() -> Image.Image:
            photo.paste(Image.fromarray(inpaint.paste(region, hole, patches, filled, feather=feather)), (x0, y0))
            return photo

        return await anyio.to_thread.run_sync(finish)


def _area_field(form: Form) -> tuple[str, bytes]:
    """Exactly one of mask / strokes / boxes; empty fields (as browsers send them) count as absent.
    Strokes and boxes may come as text or as a small JSON file."""
    given = {}
    for kind in areas.KINDS:
        value = form.get(kind)
        data = value.data if isinstance(value, Upload) else (value or "").encode()
        if data:
            given[kind] = (value, data)
    if not given:
        raise AreaMissing("send the area to remove as one of the fields mask, strokes or boxes")
    if len(given) > 1:
        raise AreaConflict(f"send only one of mask, strokes or boxes (got {', '.join(given)})")
    kind, (value, data) = given.popitem()
    if kind == "mask" and not isinstance(value, Upload):
        raise InvalidMask("the field 'mask' must be an image file", field="mask")
    return kind, data


def _decoded(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """The decoded photo in RGB, at the size the area was checked against."""
    photo = decode(image)
    if photo.size != mask.shape[::-1]:
        raise UnsupportedImage("the photo's orientation tag sits after its pixels; re-save it upright")
    return photo if photo.mode == "RGB" else photo.convert("RGB")


def _check_learned(model) -> None:
    """An operator's file that does not meet docs/models-inpainting.md is not installed for us."""
    if sorted(model.input_names) != sorted(learned.INPUTS) or model.spec.input_size <= 0:
        raise ModelUnavailable(
            f"model {model.spec.name!r} needs inputs image and mask and an input_size in the manifest",
            model=model.spec.name,
        )
