"""Pet avatar: time per avatar, split into cutout, stylise, composite and encode (the runner's
own stage clocks), median of --repeat runs after one warm-up, on chelsea as phone JPEGs.

    .venv/bin/python bench/pet_avatar.py [--repeat 5] [--size 1024] [--models u2netp,multistyle26,...]

Runs the runner in process (no HTTP, no ledger): this is the feature's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from pathlib import Path

from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.features.catalogue import Catalogue  # noqa: E402
from app.inference.registry import ModelRegistry  # noqa: E402
from app.pets.stylize import warm_up_style_models  # noqa: E402
from app.runners.base import Upload  # noqa: E402
from app.runners.pet_avatar import PetAvatarRunner  # noqa: E402
from app.settings import Settings  # noqa: E402

STAGES = ("cutout", "stylise", "composite", "encode")


def jpeg(image: Image.Image, megapixels: float) -> Upload:
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    out = io.BytesIO()
    image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS).save(
        out, "JPEG", quality=90)
    return Upload("photo.jpg", "image/jpeg", out.getvalue())


async def measure(runner, feature, form: dict, repeat: int) -> dict[str, float]:
    await runner.run(runner.prepare(form, feature))  # warm-up
    samples = {stage: [] for stage in (*STAGES, "total")}
    for _ in range(repeat):
        started = time.perf_counter()
        result = await runner.run(runner.prepare(form, feature))
        samples["total"].append((time.perf_counter() - started) * 1000)
        for stage in STAGES:
            samples[stage].append(result.meta["timings_ms"][stage])
    return {stage: statistics.median(values) for stage, values in samples.items()}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--models", default="u2netp,multistyle26,arbitrary_predict,arbitrary_transform")
    parser.add_argument("--provider", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args()

    settings = Settings(models_dir=str(ROOT / "models"), models=args.models, provider=args.provider)
    registry = ModelRegistry(settings)
    registry.load()
    registry.warm_up()
    warm_up_style_models(registry)
    runner = PetAvatarRunner(registry, settings)
    feature = Catalogue.load().get("pet-avatar")
    cat = Image.fromarray(data.chelsea())
    style_picture = jpeg(Image.fromarray(data.astronaut()), 0.25)
    common = {"size": str(args.size), "format": "png"}
    cases = [
        ("style, 1 MP", {"image": jpeg(cat, 1), "style": "19"}),
        ("style, 12 MP", {"image": jpeg(cat, 12), "style": "19"}),
        ("blend, 1 MP", {"image": jpeg(cat, 1), "blend": "3:0.5,19:0.5"}),
        ("style_image, 1 MP", {"image": jpeg(cat, 1), "style_image": style_picture}),
        ("style, 1 MP, webp", {"image": jpeg(cat, 1), "style": "19", "format": "webp"}),
    ]
    model = registry.get(runner.cutout_model())
    print(f"median of {args.repeat}, milliseconds; cutout {model.spec.name} on {model.provider}, "
          f"output {args.size}px square")
    print(f"{'case':<20}" + "".join(f"{s:>11}" for s in (*STAGES, "total")))
    try:
        for name, form in cases:
            medians = await measure(runner, feature, common | form, args.repeat)
            print(f"{name:<20}" + "".join(f"{medians[s]:>11.1f}" for s in (*STAGES, "total")))
    finally:
        registry.close()


if __name__ == "__main__":
    asyncio.run(main())
