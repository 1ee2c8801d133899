"""The one file that decides what each feature costs and what runs it.

Built-in defaults below; TRIALZONE_FEATURES_FILE (TOML) overrides or adds entries:

    [features.cutout]
    price = 31000
    model = "u2net"

    [packages.payg-1]
    name = "Pay as you go, 1 yuan"
    price_fen = 100
    tokens = 250000
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import msgspec

from app.errors import UnknownFeature


class Feature(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    title: str
    price: int
    runner: str  # a local runner's name (cutout, removal, pet_avatar) or "vendor"
    model: str | None = None  # the default model of a local runner
    vendor: str | None = None  # the partner a "vendor" runner delegates to
    vendor_task: str | None = None  # what the partner calls this task (default: the feature's name)
    needs_image: bool = True  # False: the request is a description alone (pet-generate)
    description: str = ""


class Package(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    price_fen: int
    tokens: int
    validity: Literal["one_off", "monthly"] = "one_off"
    valid_days: int = 365
    visible: bool = True


DEFAULT_FEATURES = {
    "cutout": {"title": "Smart cutout", "price": 31_000, "runner": "cutout", "model": "u2netp",
               "description": "Cut the subject out of a photo; transparent or coloured background."},
    "removal": {"title": "Smart removal", "price": 40_000, "runner": "removal", "model": "classical",
                "description": "Erase what the user brushed over."},
    "pet-avatar": {"title": "AI pet avatar", "price": 60_000, "runner": "pet_avatar", "model": "multistyle26",
                   "description": "Turn a pet photo into a styled avatar."},
    "pet-generate": {"title": "AI pet from a description", "price": 80_000, "runner": "vendor",
                     "vendor": "sandbox", "needs_image": False,
                     "description": "Draw a pet from a description (partner vendor)."},
}

DEFAULT_PACKAGES = {
    "payg-1": {"name": "Pay as you go: 1 yuan", "price_fen": 100, "tokens": 250_000, "validity": "one_off", "valid_days": 365},
    "monthly-9.9": {"name": "Monthly package: 9.9 yuan", "price_fen": 990, "tokens": 10_000_000, "validity": "monthly"},
}


class Catalogue:
    def __init__(self, features: dict[str, Feature], packages: dict[str, Package]):
        self.features = features
        self.packages = packages

    @classmethod
    def load(cls, path: str | None = None) -> "Catalogue":
        features = {k: dict(v) for k, v in DEFAULT_FEATURES.items()}
        packages = {k: dict(v) for k, v in DEFAULT_PACKAGES.items()}
        if path:
            data = tomllib.loads(Path(path).read_text())
            for name, entry in data.get("features", {}).items():
                features.setdefault(name, {}).update(entry)
            for pid, entry in data.get("packages", {}).items():
                packages.setdefault(pid, {}).update(entry)
        return cls(
            {n: msgspec.convert({"name": n, **e}, Feature) for n, e in features.items()},
            {p: msgspec.convert({"id": p, **e}, Package) for p, e in packages.items()},
        )

    def get(self, name: str) -> Feature:
        try:
            return self.features[name]
        except KeyError:
            raise UnknownFeature(f"no feature named {name!r}; see GET /v1/features") from None

    def titles(self) -> dict[str, str]:
        return {n: f.title for n, f in self.features.items()}

    def visible_packages(self) -> list[Package]:
        return [p for p in self.packages.values() if p.visible]
