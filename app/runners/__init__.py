"""Runners do a feature's work. Each local runner validates its form cheaply (``prepare``,
before any token is held) and then does the expensive part (``run``, between reserve and
capture). The catalogue names a feature's runner; this module maps names to runners."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.runners.base import Runner


def build_runners(registry, settings, *, vendors=None, store=None, http=None) -> dict[str, "Runner"]:
    from app.runners.cutout import CutoutRunner
    from app.runners.pet_avatar import PetAvatarRunner
    from app.runners.removal import RemovalRunner
    from app.runners.vendor import VendorRunner

    return {
        "cutout": CutoutRunner(registry, settings),
        "pet_avatar": PetAvatarRunner(registry, settings),
        "removal": RemovalRunner(registry, settings, max_area_share=settings.removal_max_area_share),
        "vendor": VendorRunner(vendors or {}, store, http, settings),
    }
