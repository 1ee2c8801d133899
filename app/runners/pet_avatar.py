"""AI pet avatar: cut the pet out, stylise it on neutral grey, lay it on a new background.

Form: ``image`` (file), and at most one of ``style`` (id 0-25 or slug; style 0 when none of the
three is given), ``blend`` ("id:weight,id:weight[,id:weight]", two or three styles, ids or slugs,
positive weights, normalised to sum 1) or ``style_image`` (file, through the arbitrary-style
pair); ``background`` ("#rrggbb", "#rrggbb,#rrggbb" top-to-bottom gradient, or "transparent";
default "#ffffff"), ``framing`` (square|original), ``size`` (64-2048, the output's longer side;
default 1024), ``format`` (png|webp).

Order matters: cutout first, so the style network never sees the old background and cannot
paint it into the avatar's edges.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import anyio.to_thread
import msgspec
import numpy as np
from PIL import Image

from app.errors import InvalidOption, ModelUnavailable, NoSubjectFound
from app.imaging.decode import decode
from app.imaging.encode import CONTENT_TYPES, encode
from app.inference.families import CUTOUT_FAMILIES, matte_output
from app.inference.registry import ModelRegistry
from app.pets import avatar, stylize
from app.pets.styles import find_style
from app.runners.base import Form, Prepared, Result, parse_options, request_hash, require_image
from app.settings import Settings

CUTOUT_PREFERENCE = ("isnet", "u2net", "u2netp")  # best matte first
MIN_FOREGROUND = 0.01  # share of the photo the cutout must call subject, else no_subject_found
STYLE_SIDE = 512  # the subject's longer side when stylised: bounds time, keeps strokes alike
WORK_SIDE = 2048  # larger photos are scaled down first: the avatar cannot use more detail


class PetAvatarOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    style: str | None = None
    blend: str | None = None
    background: str = "#ffffff"
    framing: avatar.Framing = "square"
    size: Annotated[int, msgspec.Meta(ge=64, le=2048)] = 1024
    format: Literal["png", "webp"] = "png"


@dataclass(frozen=True)
class Plan:
    image: Image.Image  # opened, not decoded
    options: PetAvatarOptions
    background: avatar.Background
    cutout_model: str
    style_models: tuple[str, ...]  # (multistyle,) or (predict, transform)
    mix: dict[int, float] | None  # multistyle weights, or None for the style picture
    style_image: Image.Image | None


class PetAvatarRunner:
    asynchronous = False  # answers in the request

    def __init__(self, registry: ModelRegistry, settings: Settings):
        self.registry = registry
        self.settings = settings

    def available(self, feature) -> bool:
        names = self.registry.names
        styles = names("style") or (names("style_predict") and names("style_transform"))
        return bool(names("cutout") and styles)

    def prepare(self, form: Form, feature) -> Prepared:
        options = parse_options(form, PetAvatarOptions, skip=("image", "style_image"))
        upload, image = require_image(form, self.settings)
        try:
            background = avatar.parse_background(options.background)
        except ValueError as exc:
            raise InvalidOption(str(exc), field="background") from None
        given = [k for k in ("style", "blend", "style_image") if form.get(k)]  # "" is not given
        if len(given) > 1:
            raise InvalidOption(f"give one of style, blend or style_image, not {' and '.join(given)}",
                                field=given[1])
        blobs = [upload.data]
        if "style_image" in given:
            style_upload, style_image = require_image(form, self.settings, field="style_image")
            blobs.append(style_upload.data)
            models = (self._model("style_predict"), self._model("style_transform"))
            mix = None
        else:
            style_image = None
            models = (self._model("style", feature.model),)
            mix = parse_blend(options.blend) if options.blend else {parse_style(options.style or "0"): 1.0}
        cutout = self.cutout_model()
        recorded = {
            "styles": None if mix is None else {str(k): round(v, 6) for k, v in mix.items()},
            "style_image": style_image is not None, "background": options.background,
            "framing": options.framing, "size": options.size, "format": options.format,
            "cutout_model": cutout, "style_models": list(models),
        }
        return Prepared(
            model=models[-1],
            options=recorded,
            request_hash=request_hash(feature.name, recorded, *blobs),
            payload=Plan(image, options, background, cutout, models, mix, style_image),
            input_bytes=upload.data,
            input_type=upload.content_type,
        )

    def models(self, feature) -> list[str]:
        return self.registry.names("style")

    def cutout_model(self) -> str:
        """The best installed cutout model: its matte is the avatar's edge."""
        installed = self.registry.names("cutout")
        best = [name for name in CUTOUT_PREFERENCE if name in installed] + installed
        if not best:
            raise ModelUnavailable("no cutout model is installed here", model="cutout")
        return best[0]

    def _model(self, task: str, preferred: str | None = None) -> str:
        installed = self.registry.names(task)
        if preferred in installed:
            return preferred
        if not installed:
            raise ModelUnavailable(f"no {task} model is installed here", model=preferred or task)
        return installed[0]

    async def run(self, prepared: Prepared) -> Result:
        plan: Plan = prepared.payload
        clock = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round((now - clock) * 1000, 1)
            clock = now

        cutout = self.registry.get(plan.cutout_model, task="cutout")
        family = CUTOUT_FAMILIES[cutout.spec.family]
        photo, scale, feeds = await anyio.to_thread.run_sync(self._load, plan.image, family, cutout.input_names[0])
        outputs = await cutout.run(feeds, matte_output(cutout.output_names))
        matte, subject, share = await anyio.to_thread.run_sync(self._matte, outputs, family, photo.size)
        if subject is None or share < MIN_FOREGROUND:
            raise NoSubjectFound(
                f"the cutout found a subject in {share:.1%} of the photo; at least {MIN_FOREGROUND:.0%} is needed",
                foreground=round(share, 4),
            )
        lap("cutout")

        crop = avatar.crop_box(subject, photo.size)
        neutral = await anyio.to_thread.run_sync(stylize.neutral_subject, photo, matte, crop, STYLE_SIDE)
        styled = await self._stylise(plan, neutral)
        lap("stylise")

        options = plan.options
        frame = avatar.frame_box(subject, photo.size, options.framing)
        size = avatar.canvas_size(frame, options.size)
        picture = await anyio.to_thread.run_sync(avatar.compose_avatar, styled, matte, crop, frame, size, plan.background)
        lap("composite")

        body = await anyio.to_thread.run_sync(encode, picture, options.format)
        lap("encode")
        return Result(
            body=body, content_type=CONTENT_TYPES[options.format], model=prepared.model,
            meta={"width": size[0], "height": size[1], "cutout_model": plan.cutout_model,
                  "foreground": round(share, 4), "frame": [round(v / scale) for v in frame],
                  "timings_ms": timings},
        )

    @staticmethod
    def _load(image: Image.Image, family, input_name: str):
        """Decode (a large JPEG straight at a reduced DCT scale), cap at WORK_SIDE, cutout feeds."""
        fit = min(1.0, WORK_SIDE / max(image.size))
        photo = decode(image, draft_to=(round(image.width * fit) + 1, round(image.height * fit) + 1))
        if max(photo.size) > WORK_SIDE:
            fit = WORK_SIDE / max(photo.size)
            photo = photo.resize((max(1, round(photo.width * fit)), max(1, round(photo.height * fit))),
                                 Image.Resampling.LANCZOS, reducing_gap=3.0)
        scale = max(photo.size) / max(image.size)  # longer sides: EXIF may have turned the photo
        return photo.convert("RGB"), scale, family.preprocess(photo, input_name)

    @staticmethod
    def _matte(outputs: list[np.ndarray], family, size: tuple[int, int]):
        """The matte at photo size, the subject's box, and the foreground share. The share is read
        from the model's raw probabilities: the matte is min-max stretched, which would turn the
        faint noise of an empty photo into a "subject"."""
        matte = family.postprocess(outputs, size)
        return matte, avatar.subject_box(matte), float((outputs[0] > 0.5).mean())

    async def _stylise(self, plan: Plan, neutral: Image.Image) -> Image.Image:
        if plan.mix is not None:
            model = self.registry.get(plan.style_models[0], task="style")
            feeds = await anyio.to_thread.run_sync(stylize.multistyle_feeds, neutral, stylize.style_weights(plan.mix))
            return await anyio.to_thread.run_sync(stylize.multistyle_result, await model.run(feeds), neutral.size)
        predict = self.registry.get(plan.style_models[0], task="style_predict")
        transform = self.registry.get(plan.style_models[1], task="style_transform")
        feeds = await anyio.to_thread.run_sync(lambda: stylize.predict_feeds(decode(plan.style_image)))
        vector = (await predict.run(feeds))[0]
        feeds, box = await anyio.to_thread.run_sync(stylize.transform_feeds, neutral, vector)
        return await anyio.to_thread.run_sync(stylize.transform_result, await transform.run(feeds), box, neutral.size)


def parse_style(value: str) -> int:
    style = find_style(value)
    if style is None:
        raise InvalidOption(f"style must be an id from 0 to 25 or a style slug, not {value!r}", field="style")
    return style.id


def parse_blend(text: str) -> dict[int, float]:
    """'3:0.7,starry-night:0.3' -> {3: 0.7, 19: 0.3}: two or three different styles (ids or
    slugs) with positive weights, scaled to sum 1."""
    mix: dict[int, float] = {}
    for part in text.split(","):
        key, colon, weight = part.partition(":")
        style = find_style(key)
        try:
            value = float(weight)
        except ValueError:
            value = 0.0
        if not colon or style is None or style.id in mix or not 0 < value < math.inf:
            raise InvalidOption(f"blend must look like '3:0.7,19:0.3' (style:weight, two or three different "
                                f"styles, positive weights); {part.strip()!r} is not understood", field="blend")
        mix[style.id] = value
    if not 2 <= len(mix) <= 3:
        raise InvalidOption("blend takes two or three styles; use style for one", field="blend")
    total = sum(mix.values())
    return {style: value / total for style, value in mix.items()}
