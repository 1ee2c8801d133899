"""Framing and compositing: where the stylised subject sits on the avatar, and on what."""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

from app.runners.cutout import HEX_COLOUR, parse_colour

MARGIN = 0.12  # square framing: free space on each side, as a share of the subject's longer side
CROP_PAD = 0.03  # the crop reaches this far past mask > 0.5, so the matte's soft edge survives
SUBJECT_LEVEL = 127  # matte values above this (mask > 0.5) are the subject

Box = tuple[int, int, int, int]
Frame = tuple[float, float, float, float]
RGB = tuple[int, int, int]
Background = tuple[RGB, RGB] | None  # (top, bottom) colours; None is transparent
Framing = Literal["square", "original"]


def parse_background(value: str) -> Background:
    """'transparent', '#rrggbb', or '#rrggbb,#rrggbb' (a vertical gradient, top to bottom)."""
    text = value.strip().lower()
    if text == "transparent":
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 2 or not all(HEX_COLOUR.match(p) for p in parts):
        raise ValueError(
            "background must be 'transparent', a hex colour like #1a2b3c, or two like #ff0000,#0000ff"
        )
    return parse_colour(parts[0]), parse_colour(parts[-1])


def subject_box(matte: Image.Image) -> Box | None:
    """Bounding box of the subject (mask > 0.5), or None when there is none."""
    return matte.point(lambda v: 255 if v > SUBJECT_LEVEL else 0).getbbox()


def crop_box(subject: Box, size: tuple[int, int]) -> Box:
    """The subject's box padded by CROP_PAD and clamped to the photo."""
    pad = round(CROP_PAD * max(subject[2] - subject[0], subject[3] - subject[1])) + 1
    return (max(0, subject[0] - pad), max(0, subject[1] - pad),
            min(size[0], subject[2] + pad), min(size[1], subject[3] + pad))


def frame_box(subject: Box, size: tuple[int, int], framing: Framing) -> Frame:
    """The part of the photo's plane the avatar shows: a square centred on the subject with
    MARGIN free on each side (it may reach past the photo: that is background anyway), or the
    whole photo."""
    if framing == "original":
        return 0.0, 0.0, float(size[0]), float(size[1])
    side = max(subject[2] - subject[0], subject[3] - subject[1]) * (1 + 2 * MARGIN)
    cx, cy = (subject[0] + subject[2]) / 2, (subject[1] + subject[3]) / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def canvas_size(frame: Frame, size: int) -> tuple[int, int]:
    """The output's pixels: ``size`` on the frame's longer side."""
    width, height = frame[2] - frame[0], frame[3] - frame[1]
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def paint_background(background: Background, size: tuple[int, int]) -> Image.Image:
    if background is None:
        return Image.new("RGBA", size, (0, 0, 0, 0))
    t = np.linspace(0.0, 1.0, size[1])[:, np.newaxis]
    rows = np.rint((1 - t) * np.array(background[0]) + t * np.array(background[1])).astype(np.uint8)
    column = Image.fromarray(rows[:, np.newaxis, :], "RGB")
    return column.resize(size, Image.Resampling.NEAREST).convert("RGBA")


def compose_avatar(styled: Image.Image, matte: Image.Image, crop: Box, frame: Frame,
                   size: tuple[int, int], background: Background) -> Image.Image:
    """Lay the stylised crop over the background through the photo-sized matte, where the crop
    falls in the frame. Straight alpha-over (not cutout's composite onto transparent black), so
    soft edges keep their colour instead of darkening, and RGB is zero where alpha is."""
    scale = size[0] / (frame[2] - frame[0])
    at = (round((crop[0] - frame[0]) * scale), round((crop[1] - frame[1]) * scale))
    drawn = (max(1, round((crop[2] - crop[0]) * scale)), max(1, round((crop[3] - crop[1]) * scale)))
    subject = styled.resize(drawn, Image.Resampling.LANCZOS).convert("RGBA")
    subject.putalpha(matte.crop(crop).resize(drawn, Image.Resampling.LANCZOS))
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    layer.paste(subject, at)
    avatar = Image.alpha_composite(paint_background(background, size), layer)
    return avatar if background is None else avatar.convert("RGB")
