"""Style previews: the sample photo in every style, rendered by the real runner (so a preview
shows what a user will get) into small WebP files under assets/styles/, served statically.

    python -m app.pets.thumbnails [--size 160] [--out assets/styles]

It loads the models TRIALZONE_MODELS_DIR / TRIALZONE_MODELS name, so the best installed cutout
model draws the previews.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from app.features.catalogue import Catalogue
from app.inference.registry import ModelRegistry
from app.pets.styles import STYLES, Style
from app.runners.base import Upload
from app.runners.pet_avatar import PetAvatarRunner
from app.settings import Settings

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SAMPLE = ASSETS / "samples" / "chelsea.jpg"  # scikit-image's data.chelsea()
OUT_DIR = ASSETS / "styles"
SIZE = 160
BACKGROUND = "#f4f1ec"


def thumbnail_name(style: Style) -> str:
    return f"{style.id}-{style.slug}.webp"


def style_catalogue(base_url: str = "/assets/styles") -> list[dict]:
    """Body of GET /v1/features/pet-avatar/styles: every style with its preview's URL."""
    base = base_url.rstrip("/")
    return [{"id": s.id, "name": s.name, "slug": s.slug, "thumbnail_url": f"{base}/{thumbnail_name(s)}"}
            for s in STYLES]


async def render(runner: PetAvatarRunner, feature, out_dir: Path, size: int) -> list[Path]:
    photo = Upload(SAMPLE.name, "image/jpeg", SAMPLE.read_bytes())
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for style in STYLES:
        form = {"image": photo, "style": str(style.id), "size": str(size), "format": "webp",
                "background": BACKGROUND}
        result = await runner.run(runner.prepare(form, feature))
        path = out_dir / thumbnail_name(style)
        path.write_bytes(result.body)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.pets.thumbnails", description="Render the style previews into assets/styles/.")
    parser.add_argument("--size", type=int, default=SIZE, help="pixels per side (default %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder (default assets/styles)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    registry = ModelRegistry(settings)
    registry.load()
    try:
        runner = PetAvatarRunner(registry, settings)
        feature = Catalogue.load(settings.features_file).get("pet-avatar")
        paths = anyio.run(render, runner, feature, args.out, args.size)
    finally:
        registry.close()
    print(f"wrote {len(paths)} previews to {args.out} (cutout model: {runner.cutout_model()})")


if __name__ == "__main__":
    main()
