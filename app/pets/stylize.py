"""Pre/post-processing for the style models, and their warm-up.

multistyle26 is one network for 26 styles: a weight vector picks one style (one-hot) or blends
several, and it takes any size whose sides are multiples of 4. The arbitrary-style pair turns any
picture into a 100-number style vector (predict, 256x256) and paints a content image with it
(transform, 384x384: both sizes are baked into the graphs). Input names are the graphs' own.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

STYLE_COUNT = 26
PREDICT_SIZE = 256
TRANSFORM_SIZE = 384
VECTOR_NAME = "mobilenet_conv/Conv/BiasAdd"  # the predictor's output and the transformer's input
VECTOR_SIZE = 100
# What the style network sees around the subject: the old background would be painted into the
# avatar's edges, a flat mid grey is painted as a quiet texture that the matte then cuts away.
NEUTRAL = (128, 128, 128)

Box = tuple[int, int, int, int]


def style_weights(mix: dict[int, float]) -> np.ndarray:
    """{style id: weight} -> the [26] vector; weights should sum to 1, as in training."""
    weights = np.zeros(STYLE_COUNT, dtype=np.float32)
    for style, weight in mix.items():
        weights[style] = weight
    return weights


def neutral_subject(photo: Image.Image, matte: Image.Image, box: Box, long_side: int) -> Image.Image:
    """The subject cropped to ``box`` and laid on neutral grey, scaled to ``long_side``: the
    same subject size whatever the photo's resolution, so strokes look alike and time is bounded."""
    crop, alpha = photo.convert("RGB").crop(box), matte.crop(box)
    scale = long_side / max(crop.size)
    size = (max(4, round(crop.width * scale)), max(4, round(crop.height * scale)))
    crop = crop.resize(size, Image.Resampling.LANCZOS)
    alpha = alpha.resize(size, Image.Resampling.LANCZOS)
    return Image.composite(crop, Image.new("RGB", size, NEUTRAL), alpha)


def multistyle_feeds(image: Image.Image, weights: np.ndarray) -> dict[str, np.ndarray]:
    """RGB 0..1, NCHW, edge-padded to multiples of 4 (the network downsamples twice by 2)."""
    x = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    h, w = x.shape[:2]
    x = np.pad(x, ((0, -h % 4), (0, -w % 4), (0, 0)), mode="edge")
    return {"image": x.transpose(2, 0, 1)[np.newaxis].copy(), "style_weights": weights}


def multistyle_result(outputs: list[np.ndarray], size: tuple[int, int]) -> Image.Image:
    """The stylised picture, padding cut off; ``size`` is the input's (width, height)."""
    w, h = size
    return _to_image(outputs[0][0, :, :h, :w].transpose(1, 2, 0))


def predict_feeds(style: Image.Image) -> dict[str, np.ndarray]:
    """The style picture's central square at 256x256, NHWC 0..1."""
    square = ImageOps.fit(style.convert("RGB"), (PREDICT_SIZE, PREDICT_SIZE), Image.Resampling.LANCZOS)
    return {"style_image": (np.asarray(square, dtype=np.float32) / 255.0)[np.newaxis]}


def transform_feeds(image: Image.Image, vector: np.ndarray) -> tuple[dict[str, np.ndarray], Box]:
    """The content letterboxed on neutral grey at 384x384, so the subject keeps its proportions;
    also returns where it lies, for ``transform_result``."""
    scale = TRANSFORM_SIZE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    left, top = (TRANSFORM_SIZE - size[0]) // 2, (TRANSFORM_SIZE - size[1]) // 2
    canvas = Image.new("RGB", (TRANSFORM_SIZE, TRANSFORM_SIZE), NEUTRAL)
    canvas.paste(image.convert("RGB").resize(size, Image.Resampling.LANCZOS), (left, top))
    x = (np.asarray(canvas, dtype=np.float32) / 255.0)[np.newaxis]
    return {"content_image": x, VECTOR_NAME: vector}, (left, top, left + size[0], top + size[1])


def transform_result(outputs: list[np.ndarray], box: Box, size: tuple[int, int]) -> Image.Image:
    """The painted content, letterbox cut off, back at the content's ``size``."""
    return _to_image(outputs[0][0]).crop(box).resize(size, Image.Resampling.LANCZOS)


def _to_image(hwc: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(hwc, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")


def warm_up_style_models(registry) -> None:
    """Run every loaded style model once on the smallest input it takes, so the first avatar
    does not pay for ONNX Runtime's first-run allocations."""
    blank = Image.new("RGB", (64, 64), NEUTRAL)
    for name in registry.names("style"):
        registry.get(name).run_sync(multistyle_feeds(blank, style_weights({0: 1.0})))
    vector = np.zeros((1, 1, 1, VECTOR_SIZE), dtype=np.float32)
    for name in registry.names("style_predict"):
        vector = registry.get(name).run_sync(predict_feeds(blank))[0]
    for name in registry.names("style_transform"):
        registry.get(name).run_sync(transform_feeds(blank, vector)[0])
