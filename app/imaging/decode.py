"""Turn uploaded bytes into an upright 8-bit RGB or RGBA picture, or a clear 4xx.

Sizes are checked twice before any pixel is decoded: the byte count, then the pixel count the
header declares (Pillow reads only the header on open), so a tiny file that declares a
gigapixel image costs nothing.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from app.errors import ImageTooLarge, UnsupportedImage

register_heif_opener()

FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "GIF", "BMP", "TIFF")


def open_image(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """Identify the image and check its declared size; pixels are not decoded yet."""
    if not data:
        raise UnsupportedImage("the uploaded file is empty")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the file is {len(data):,} bytes; the limit is {max_bytes:,}", limit_bytes=max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge("the image declares more pixels than we accept", limit_pixels=max_pixels) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UnsupportedImage("the file is not a JPEG, PNG, WebP or HEIC image we can read") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise UnsupportedImage("the image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} ({width * height / 1e6:.1f} MP); the limit is {max_pixels / 1e6:.0f} MP",
            limit_pixels=max_pixels,
        )
    return image


def decode(image: Image.Image, *, draft_to: tuple[int, int] | None = None) -> Image.Image:
    """Decode the first frame, apply EXIF orientation, normalise to 8-bit RGB or RGBA.

    ``draft_to`` lets JPEG decode at a reduced DCT scale when only a small picture is needed
    (preview output): several times faster than decoding all pixels and resizing.
    """
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        if draft_to and image.format == "JPEG":
            image.draft("RGB", draft_to)
        image.load()
        # In place: a copy only when the photo really is rotated (not ~20 ms of copying at 12 MP).
        ImageOps.exif_transpose(image, in_place=True)
        return _to_8bit(image)
    except (OSError, SyntaxError, ValueError, EOFError):
        raise UnsupportedImage("the image is truncated or corrupt") from None


def _to_8bit(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # Pillow's convert("L") clips 16-bit values instead of scaling them.
        array = np.asarray(image, dtype=np.uint32 if mode == "I" else np.uint16)
        top = 65535 if mode != "I" else max(int(array.max()), 1)
        return Image.fromarray((array.astype(np.float32) * (255.0 / top)).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    return image.convert("RGB")  # L, 1, P, CMYK (Pillow undoes Adobe's inverted CMYK), YCbCr
