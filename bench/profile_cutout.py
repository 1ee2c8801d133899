"""Where a cutout's time goes, stage by stage, with pyinstrument's call tree.

    .venv/bin/python bench/profile_cutout.py [--mp 12] [--repeat 5]
    (or `bench/run.py --sections profile`)

Runs the cutout runner's own stages in the main thread (pyinstrument samples one thread): decode
and preprocess, session.run, matte and PNG. In the service decode and preprocess start in the
background from ``prepare`` (while the tokens are held), and the PNG strips run in the PNG
writer's threads (seen here as waiting). Writes the tree to bench/out/profile-<mp>mp.txt.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import ROOT, photo_jpeg  # noqa: E402
from report import table  # noqa: E402

from app.features.catalogue import Catalogue  # noqa: E402
from app.imaging.decode import open_image  # noqa: E402
from app.inference.families import CUTOUT_FAMILIES, matte_output  # noqa: E402
from app.inference.registry import ModelRegistry  # noqa: E402
from app.runners.base import Upload  # noqa: E402
from app.runners.cutout import CutoutRunner  # noqa: E402
from app.settings import Settings  # noqa: E402


def profile(megapixels: float, repeat: int, out: Path) -> dict[str, float]:
    from pyinstrument import Profiler

    settings = Settings(models_dir=str(ROOT / "models"), models="u2netp", provider="cpu")
    registry = ModelRegistry(settings)
    registry.load()
    registry.warm_up()
    runner = CutoutRunner(registry, settings)
    feature = Catalogue.load(None).get("cutout")
    data = photo_jpeg(megapixels)
    model = registry.get("u2netp")
    family = CUTOUT_FAMILIES[model.spec.family]
    stages: dict[str, list[float]] = {}

    def clock(name, fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        stages.setdefault(name, []).append(time.perf_counter() - started)
        return result

    def once():
        prepared = clock("prepare (header, checks)", runner.prepare,
                         {"image": Upload("p.jpg", "image/jpeg", data)}, feature)
        _, options, decoded = prepared.payload
        decoded.result()  # the service decodes in the background from prepare; profiled again here:
        image = open_image(data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
        photo, feeds = clock("decode + preprocess", runner._load, image, options, family, model.input_names[0])
        outputs = clock("session.run", model.run_sync, feeds, matte_output(model.output_names))
        clock("matte + compose + PNG", runner._finish, photo, outputs, options, family)

    once()  # warm
    stages.clear()
    profiler = Profiler(interval=0.001)
    profiler.start()
    for _ in range(repeat):
        once()
    profiler.stop()
    registry.close()
    out.write_text(profiler.output_text(unicode=True, show_all=False))
    return {name: statistics.median(values) for name, values in stages.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mp", type=float, default=12)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    out = BENCH / "out" / f"profile-{args.mp:g}mp.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    medians = profile(args.mp, args.repeat, out)
    total = sum(medians.values())
    table(f"cutout stages at {args.mp:g} MP, one thread, median of {args.repeat} (pyinstrument tree: {out.name})",
          ["stage", "seconds", "share"], [[n, v, f"{v / total:.0%}"] for n, v in medians.items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
