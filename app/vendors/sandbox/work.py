"""What the sandbox vendor actually does with a task: real pictures, so a demo or a test sees
the work a partner would do. Cutout runs our u2netp through ONNX Runtime (the same pre/post
processing and compositing as the local runner); removal erases the boxes or strokes given in
``params`` (or, without any, the main subject) with classical inpainting; pet-generate draws.

Everything here is blocking and runs in a worker thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnxruntime as ort
from PIL import Image

from app.errors import InvalidOption, ModelUnavailable
from app.imaging import areas, inpaint
from app.imaging.decode import decode, open_image
from app.imaging.encode import CONTENT_TYPES, encode
from app.inference.families import u2net
from app.runners.cutout import CutoutOptions, compose
from app.vendors.sandbox.draw import draw_pet, pet_from_params

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000
FEATURES = {"cutout": True, "removal": True, "pet-generate": False}  # feature -> needs a photo
CUTOUT_PARAMS = ("format", "mask_only", "background")
SUBJECT_LEVEL = 127  # matte values above this are the subject removal erases by default


class Worker:
    def __init__(self, models_dir: str):
        self.model_path = Path(models_dir) / "u2netp.onnx"
        self._session: ort.InferenceSession | None = None
        self._lock = threading.Lock()

    def check(self, feature: str, params: dict[str, Any]) -> None:
        """Refuse, at dispatch, parameters the sandbox could never honour (a 4xx to the caller)."""
        try:
            if feature == "pet-generate":
                pet_from_params(params)
            elif feature == "cutout":
                _cutout_options(params)
        except (ValueError, msgspec.ValidationError) as exc:
            raise InvalidOption(str(exc)) from None

    def run(self, feature: str, photo: bytes | None, params: dict[str, Any]) -> tuple[bytes, str]:
        if feature == "pet-generate":
            return draw_pet(pet_from_params(params)), "image/png"
        image = decode(open_image(photo, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS))
        if feature == "cutout":
            options = _cutout_options(params)
            return encode(compose(image, self.matte(image), options), options.format), CONTENT_TYPES[options.format]
        return encode(self.remove(image.convert("RGB"), params), "png"), "image/png"

    def matte(self, photo: Image.Image) -> Image.Image:
        session = self.session()
        outputs = session.run(None, u2net.preprocess(photo, session.get_inputs()[0].name))
        return u2net.postprocess(outputs, photo.size)

    def remove(self, photo: Image.Image, params: dict[str, Any]) -> Image.Image:
        kind = next((k for k in ("boxes", "strokes") if params.get(k)), None)
        radius = areas.dilation_radius(photo.size)
        if kind:
            value = params[kind]
            data = value.encode() if isinstance(value, str) else msgspec.json.encode(value)
            mask = areas.parse_area(kind, data, photo.size, max_share=0.5, dilate=True,
                                    max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
        else:
            mask = areas.grow(np.asarray(self.matte(photo)) > SUBJECT_LEVEL, radius)
        return inpaint.fill_image(photo, mask, feather=radius)

    def session(self) -> ort.InferenceSession:
        with self._lock:
            if self._session is None:
                if not self.model_path.is_file():
                    raise ModelUnavailable(f"the sandbox needs {self.model_path}; run `python -m app models fetch`")
                self._session = ort.InferenceSession(str(self.model_path), providers=["CPUExecutionProvider"])
            return self._session


def _cutout_options(params: dict[str, Any]) -> CutoutOptions:
    return msgspec.convert({k: params[k] for k in CUTOUT_PARAMS if k in params}, CutoutOptions, strict=False)
