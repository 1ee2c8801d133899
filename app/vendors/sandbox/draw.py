"""The sandbox's "AI pet from a description": a pet portrait drawn with Pillow from the
description's attributes, so QA and demos see a picture that follows what was asked for.

A portrait is a list of shapes in a unit square (head, ears, eyes, nose, whiskers...) chosen by
species and coloured from the description; the style decides how those shapes are rendered.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

RGB = tuple[int, int, int]
Point = tuple[float, float]

SPECIES = {"cat": "cat", "kitten": "cat", "kitty": "cat", "dog": "dog", "puppy": "dog", "pup": "dog",
           "rabbit": "rabbit", "bunny": "rabbit", "fox": "fox", "bear": "bear", "mouse": "mouse",
           "hamster": "mouse"}
COLOURS: dict[str, RGB] = {
    "black": (38, 36, 40), "white": (244, 242, 236), "grey": (140, 140, 146), "gray": (140, 140, 146),
    "silver": (190, 192, 198), "orange": (236, 142, 52), "ginger": (222, 120, 46), "red": (196, 72, 40),
    "brown": (128, 82, 48), "chocolate": (96, 58, 36), "golden": (222, 170, 82), "cream": (240, 222, 180),
    "tan": (206, 164, 112), "blue": (112, 132, 160), "pink": (238, 160, 180), "purple": (140, 100, 180),
    "green": (100, 170, 90), "yellow": (236, 206, 70),
}
EYE_COLOURS: dict[str, RGB] = {"green": (110, 180, 60), "blue": (70, 140, 220), "amber": (220, 150, 30),
                               "brown": (110, 66, 30), "yellow": (226, 200, 40)}
STYLES = ("cartoon", "flat", "sketch", "watercolor", "pixel")
STYLE_WORDS = {"watercolour": "watercolor", "painting": "watercolor", "pencil": "sketch", "drawing": "sketch",
               "pixel-art": "pixel", "8-bit": "pixel", "minimal": "flat", "comic": "cartoon"}
PATTERNS = {"tabby": "stripes", "striped": "stripes", "stripes": "stripes", "spotted": "spots", "spots": "spots",
            "dalmatian": "spots"}
PINK: RGB = (240, 160, 172)
INK: RGB = (34, 30, 36)
SUPERSAMPLE = 2


@dataclass(frozen=True)
class Pet:
    species: str
    colour: RGB
    eyes: RGB
    pattern: str  # plain | stripes | spots
    style: str
    background: RGB | None
    size: int
    seed: int


@dataclass
class Shape:
    points: list[Point]
    fill: RGB | None
    line: RGB | None = INK
    closed: bool = True
    weight: float = 1.0


def pet_from_params(params: dict[str, Any]) -> Pet:
    """Explicit params win; missing ones are read from the words of ``description``. ValueError
    names an attribute the sandbox cannot draw."""
    words = re.findall(r"[a-z0-9#\-]+", str(params.get("description", "")).lower())
    species = _pick(params.get("species"), words, SPECIES, "cat", "species")
    eye_words = {i for i in range(len(words)) if words[i + 1:i + 2] == ["eyes"]}
    fur_words = [w for i, w in enumerate(words) if i not in eye_words]
    colour = _colour(params.get("colour") or params.get("color"), fur_words, COLOURS, "colour") or COLOURS["ginger"]
    eyes = _colour(params.get("eyes"), [words[i] for i in eye_words], EYE_COLOURS, "eyes") or (
        EYE_COLOURS["green"] if species == "cat" else EYE_COLOURS["brown"])
    style = _pick(params.get("style"), words, {s: s for s in STYLES} | STYLE_WORDS, "cartoon", "style")
    pattern = _pick(params.get("pattern"), words, PATTERNS | {"plain": "plain"}, "plain", "pattern")
    background = _colour(params.get("background"), [], COLOURS, "background")
    size = int(params.get("size", 512))
    if not 64 <= size <= 1024:
        raise ValueError("size must be between 64 and 1024")
    seed = int.from_bytes(hashlib.sha256(repr(sorted(params.items())).encode()).digest()[:4], "big")
    return Pet(species, colour, eyes, pattern, style, background, size, seed)


def draw_pet(pet: Pet) -> bytes:
    """The portrait as PNG bytes."""
    rng = random.Random(pet.seed)
    shapes = portrait(pet, rng)
    if pet.style == "pixel":
        small = _render(shapes, pet, 64, rng, "cartoon")
        image = small.quantize(24).convert("RGB").resize((pet.size, pet.size), Image.Resampling.NEAREST)
    else:
        big = _render(shapes, pet, pet.size * SUPERSAMPLE, rng, pet.style)
        image = big.resize((pet.size, pet.size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def portrait(pet: Pet, rng: random.Random) -> list[Shape]:
    """Back to front: body, back ears, head, markings, front ears, face."""
    fur, shade, light = pet.colour, _mix(pet.colour, INK, 0.3), _mix(pet.colour, (255, 250, 245), 0.6)
    cx, cy = 0.5, 0.56
    rx, ry = {"cat": (0.27, 0.24), "dog": (0.25, 0.27), "rabbit": (0.23, 0.22), "fox": (0.26, 0.23),
              "bear": (0.28, 0.26), "mouse": (0.22, 0.21)}[pet.species]
    shapes = [Shape(ellipse(cx, 1.1, 0.36, 0.3), fur), Shape(ellipse(cx, 0.98, 0.12, 0.1), light, None)]
    shapes += _ears(pet.species, cx, cy, fur, shade, light, front=False)
    if pet.species == "fox":  # a fox's face tapers to its muzzle
        shapes.append(Shape([(cx - rx, cy - 0.1), (cx + rx, cy - 0.1), (cx + rx * 0.9, cy + 0.08), (cx, cy + ry),
                             (cx - rx * 0.9, cy + 0.08)], fur))
        shapes.append(Shape(ellipse(cx, cy - 0.06, rx * 0.98, ry * 0.8), fur, None))
        shapes.append(Shape([(cx - rx * 0.9, cy + 0.04), (cx, cy + 0.02), (cx + rx * 0.9, cy + 0.04), (cx, cy + ry)],
                            (246, 242, 236), None))
    else:
        shapes.append(Shape(ellipse(cx, cy, rx, ry), fur))
    shapes += _pattern(pet.pattern, cx, cy, rx, ry, shade, rng)
    shapes += _ears(pet.species, cx, cy, fur, shade, light, front=True)
    if pet.species in ("dog", "bear"):
        shapes.append(Shape(ellipse(cx, cy + 0.1, 0.12, 0.085), light, None))
    elif pet.species in ("cat", "rabbit", "mouse"):
        shapes += [Shape(ellipse(cx + dx, cy + 0.1, 0.055, 0.045), light, None) for dx in (-0.045, 0.045)]
    shapes += _eyes(pet, cx, cy)
    shapes += _nose_and_mouth(pet.species, cx, cy + 0.065)
    if pet.species in ("cat", "rabbit", "mouse", "fox"):
        whisker = (70, 66, 70) if sum(fur) > 300 else (225, 225, 225)
        for side in (-1, 1):
            for dy in (-0.025, 0.0, 0.025):
                shapes.append(Shape([(cx + side * 0.1, cy + 0.1 + dy / 2), (cx + side * 0.33, cy + 0.08 + dy * 2)],
                                    None, whisker, closed=False, weight=0.5))
    return shapes


def _ears(species: str, cx: float, cy: float, fur: RGB, shade: RGB, light: RGB, *, front: bool) -> list[Shape]:
    shapes = []
    for side in (-1, 1):
        if species in ("cat", "fox") and not front:
            tall = 0.43 if species == "fox" else 0.38
            outer = [(cx + side * 0.27, cy - 0.08), (cx + side * 0.23, cy - tall), (cx + side * 0.05, cy - 0.2)]
            inner_colour = (250, 246, 240) if species == "fox" else PINK
            shapes += [Shape(outer, fur), Shape(_shrink(outer, 0.55), inner_colour, None)]
        elif species == "rabbit" and not front:
            angle = side * 0.14
            shapes += [Shape(ellipse(cx + side * 0.1, cy - 0.4, 0.065, 0.24, angle), fur),
                       Shape(ellipse(cx + side * 0.1, cy - 0.38, 0.032, 0.18, angle), PINK, None)]
        elif species in ("bear", "mouse") and not front:
            r, dx, dy, inner = (0.09, 0.21, 0.2, light) if species == "bear" else (0.14, 0.24, 0.18, PINK)
            shapes += [Shape(ellipse(cx + side * dx, cy - dy, r, r), fur),
                       Shape(ellipse(cx + side * dx, cy - dy, r * 0.55, r * 0.55), inner, None)]
        elif species == "dog" and front:
            shapes.append(Shape(ellipse(cx + side * 0.26, cy - 0.02, 0.085, 0.2, -side * 0.35), shade))
    return shapes


def _pattern(pattern: str, cx: float, cy: float, rx: float, ry: float, shade: RGB, rng: random.Random) -> list[Shape]:
    if pattern == "stripes":
        marks = [Shape([(cx + dx, cy - ry * 0.95), (cx + dx * 1.2, cy - ry * 0.6)], None, shade, False, 1.6)
                 for dx in (-0.05, 0.0, 0.05)]
        for side in (-1, 1):
            marks += [Shape([(cx + side * rx, cy + dy), (cx + side * rx * 0.72, cy + dy + 0.01)], None, shade, False, 1.4)
                      for dy in (0.0, 0.05)]
        return marks
    if pattern == "spots":
        return [Shape(ellipse(cx + rng.uniform(-rx, rx) * 0.7, cy + rng.uniform(-ry, 0.02) * 0.8,
                              rng.uniform(0.02, 0.04), rng.uniform(0.02, 0.035)), shade, None) for _ in range(5)]
    return []


def _eyes(pet: Pet, cx: float, cy: float) -> list[Shape]:
    shapes = []
    for side in (-1, 1):
        x, y = cx + side * 0.105, cy - 0.02
        if pet.species in ("cat", "fox"):
            shapes += [Shape(ellipse(x, y, 0.055, 0.045), pet.eyes), Shape(ellipse(x, y, 0.012, 0.04), INK, None)]
        else:
            shapes += [Shape(ellipse(x, y, 0.045, 0.05), (250, 250, 250)), Shape(ellipse(x, y + 0.005, 0.034, 0.038),
                                                                                 pet.eyes, None),
                       Shape(ellipse(x, y + 0.008, 0.02, 0.022), INK, None)]
        shapes.append(Shape(ellipse(x + 0.012, y - 0.015, 0.009, 0.009), (255, 255, 255), None))
    return shapes


def _nose_and_mouth(species: str, cx: float, ny: float) -> list[Shape]:
    shapes = []
    if species in ("dog", "bear", "fox"):
        shapes.append(Shape(ellipse(cx, ny, 0.045 if species != "fox" else 0.03, 0.028), INK))
    else:
        shapes.append(Shape([(cx - 0.025, ny - 0.012), (cx + 0.025, ny - 0.012), (cx, ny + 0.018)], PINK))
    bottom = ny + 0.025
    if species == "dog":
        shapes.append(Shape(ellipse(cx, bottom + 0.05, 0.028, 0.038), (230, 110, 130)))
    if species == "rabbit":
        shapes += [Shape([(cx + dx, bottom + 0.03), (cx + dx + 0.018, bottom + 0.03), (cx + dx + 0.018, bottom + 0.065),
                          (cx + dx, bottom + 0.065)], (252, 252, 248)) for dx in (-0.019, 0.001)]
    shapes.append(Shape([(cx, ny + 0.015), (cx, bottom + 0.02)], None, INK, False, 0.8))
    for side in (-1, 1):
        arc = [(cx + side * 0.045 * (1 - math.cos(t)), bottom + 0.02 + 0.02 * math.sin(t))
               for t in np.linspace(0, math.pi * 0.9, 10)]
        shapes.append(Shape(arc, None, INK, False, 0.8))
    return shapes


def _render(shapes: list[Shape], pet: Pet, size: int, rng: random.Random, style: str) -> Image.Image:
    image = _background(pet, size, style, rng)
    width = max(1, round(size * 0.008))
    for shape in shapes:
        points = [(x * size, y * size) for x, y in shape.points]
        if style == "sketch":
            _sketch(image, shape, points, width, rng)
        elif style == "watercolor":
            _wash(image, shape, points, width, size)
        else:
            draw = ImageDraw.Draw(image)
            if shape.fill and shape.closed:
                draw.polygon(points, fill=shape.fill)
            outline = shape.line and (style == "cartoon" or not shape.closed)
            if outline:
                line_width = max(1, round(width * shape.weight)) if style != "flat" else max(1, round(width * 0.6))
                draw.line(points + (points[:1] if shape.closed else []), fill=shape.line, width=line_width,
                          joint="curve")
    return image


def _background(pet: Pet, size: int, style: str, rng: random.Random) -> Image.Image:
    base = pet.background or _mix(_complement(pet.colour), (255, 255, 255), 0.65)
    if style in ("sketch", "watercolor"):
        paper = np.full((size, size, 3), pet.background or _mix(base, (250, 246, 236), 0.75), dtype=np.int16)
        paper += np.random.default_rng(pet.seed).integers(-6, 7, (size, size, 1), dtype=np.int16)
        return Image.fromarray(paper.clip(0, 255).astype(np.uint8))
    top, bottom = np.array(_mix(base, (255, 255, 255), 0.4)), np.array(base)
    ramp = np.linspace(0, 1, size)[:, None, None]
    image = Image.fromarray((top + (bottom - top) * ramp).repeat(size, axis=1).astype(np.uint8))
    if style == "flat":
        ImageDraw.Draw(image).ellipse((size * 0.12, size * 0.14, size * 0.88, size * 0.9), fill=_mix(base, INK, 0.12))
    return image


def _sketch(image: Image.Image, shape: Shape, points: list[Point], width: int, rng: random.Random) -> None:
    """Coloured-pencil hatching and a light wash inside the shape, then two wobbly graphite
    passes over its edge (the wobble scaled to the shape, so eyes stay eyes)."""
    if shape.fill and shape.closed:
        box, local = _local(points, image.size, width)
        mask = Image.new("L", (box[2] - box[0], box[3] - box[1]))
        ImageDraw.Draw(mask).polygon(local, fill=255)
        hatch = Image.new("L", mask.size)
        step, side = max(3, image.width // 90), max(mask.size)
        hatch_draw = ImageDraw.Draw(hatch)
        for offset in range(-side, side, step):
            hatch_draw.line([(offset, side), (offset + side, 0)], fill=150, width=max(1, width // 2))
        region = image.crop(box)
        region.paste(image.getpixel((0, 0)), mask=mask)  # paper: what is behind stays hidden
        region.paste(shape.fill, mask=mask.point(lambda v: v // 2))
        region.paste(_mix(shape.fill, INK, 0.2), mask=ImageChops.multiply(mask, hatch))
        image.paste(region, box[:2])
    if shape.line:
        draw = ImageDraw.Draw(image)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        wobble = min(width * 0.6, 0.04 * max(max(xs) - min(xs), max(ys) - min(ys)))
        pencil = _mix(shape.line, (120, 120, 120), 0.3)
        for _ in range(2):
            jitter = [(x + rng.gauss(0, wobble), y + rng.gauss(0, wobble)) for x, y in points]
            draw.line(jitter + (jitter[:1] if shape.closed else []), fill=pencil, width=max(1, width // 2))


def _wash(image: Image.Image, shape: Shape, points: list[Point], width: int, size: int) -> None:
    """A soft-edged fill with pigment pooled at its rim, and soft lines for whiskers and mouth."""
    if shape.fill and shape.closed:
        box, local = _local(points, image.size, round(size * 0.03))
        mask = Image.new("L", (box[2] - box[0], box[3] - box[1]))
        ImageDraw.Draw(mask).polygon(local, fill=255)
        soft = mask.filter(ImageFilter.GaussianBlur(size * 0.004))
        rim = ImageChops.subtract(soft, mask.filter(ImageFilter.GaussianBlur(size * 0.012)))
        region = image.crop(box)
        region.paste(shape.fill, mask=soft)
        region.paste(_mix(shape.fill, INK, 0.35), mask=rim.point(lambda v: min(255, v * 2)))
        image.paste(region, box[:2])
    if shape.line and not shape.closed:
        layer = Image.new("L", image.size)
        ImageDraw.Draw(layer).line(points, fill=170, width=max(1, round(width * shape.weight * 0.7)))
        image.paste(shape.line, mask=layer.filter(ImageFilter.GaussianBlur(1)))


def _local(points: list[Point], size: tuple[int, int], pad: int) -> tuple[tuple[int, int, int, int], list[Point]]:
    """The shape's padded bounding box on the canvas, and its points relative to that box."""
    x0 = max(0, int(min(p[0] for p in points)) - pad)
    y0 = max(0, int(min(p[1] for p in points)) - pad)
    x1 = min(size[0], int(max(p[0] for p in points)) + pad + 1)
    y1 = min(size[1], int(max(p[1] for p in points)) + pad + 1)
    return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), [(x - x0, y - y0) for x, y in points]


def ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0, n: int = 72) -> list[Point]:
    cos, sin = math.cos(angle), math.sin(angle)
    points = []
    for t in np.linspace(0, 2 * math.pi, n, endpoint=False):
        x, y = rx * math.cos(t), ry * math.sin(t)
        points.append((cx + x * cos - y * sin, cy + x * sin + y * cos))
    return points


def _shrink(points: list[Point], factor: float) -> list[Point]:
    mx, my = sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)
    return [(mx + (x - mx) * factor, my + (y - my) * factor) for x, y in points]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))


def _complement(colour: RGB) -> RGB:
    return tuple(255 - c for c in colour)


def _pick(value: Any, words: list[str], names: dict[str, str], default: str, field: str) -> str:
    if value is not None:
        key = str(value).strip().lower()
        if key not in names:
            raise ValueError(f"{field} {value!r} is not one of {', '.join(sorted(set(names.values())))}")
        return names[key]
    return next((names[w] for w in words if w in names), default)


def _colour(value: Any, words: list[str], names: dict[str, RGB], field: str) -> RGB | None:
    """A named colour or #rrggbb, from the param or else the first colour word of the description."""
    candidates = [str(value).strip().lower()] if value is not None else words
    for word in candidates:
        if word in names:
            return names[word]
        if re.fullmatch(r"#[0-9a-f]{6}", word):
            return tuple(int(word[i:i + 2], 16) for i in (1, 3, 5))
    if value is not None:
        raise ValueError(f"{field} {value!r} is not a colour name ({', '.join(sorted(names))}) or #rrggbb")
    return None
