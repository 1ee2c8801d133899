"""The 26 styles of multistyle26, named by how they look on a cat (previews in assets/styles/).

Ids are the network's style indices; slugs are the stable names clients may send instead.
"""

from __future__ import annotations

from typing import NamedTuple


class Style(NamedTuple):
    id: int
    slug: str
    name: str


_NAMES = [
    ("pastel", "Pastel"),
    ("bold-lines", "Bold lines"),
    ("charcoal", "Charcoal"),
    ("vivid-shards", "Vivid shards"),
    ("crimson-oil", "Crimson oil"),
    ("autumn-oil", "Autumn oil"),
    ("leopard", "Leopard"),
    ("midnight-gold", "Midnight gold"),
    ("neon-sketch", "Neon sketch"),
    ("teal-pebbles", "Teal pebbles"),
    ("terracotta", "Terracotta"),
    ("ink-wash", "Ink wash"),
    ("watercolour", "Watercolour"),
    ("green-cubist", "Green cubist"),
    ("frost", "Frost"),
    ("stained-glass", "Stained glass"),
    ("blue-impressionist", "Blue impressionist"),
    ("woven-blocks", "Woven blocks"),
    ("ochre-woodcut", "Ochre woodcut"),
    ("starry-night", "Starry night"),
    ("scarlet", "Scarlet"),
    ("pop-art", "Pop art"),
    ("ink-strokes", "Ink strokes"),
    ("smoky", "Smoky"),
    ("teal-etching", "Teal etching"),
    ("mosaic", "Mosaic"),
]

STYLES: tuple[Style, ...] = tuple(Style(i, slug, name) for i, (slug, name) in enumerate(_NAMES))
_BY_KEY = {str(s.id): s for s in STYLES} | {s.slug: s for s in STYLES}


def find_style(key: str) -> Style | None:
    """A style by id ("3") or slug ("vivid-shards"); None when there is no such style."""
    return _BY_KEY.get(key.strip().lower())
