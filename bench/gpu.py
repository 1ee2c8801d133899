"""The GPU path, measured on a host with onnxruntime-gpu: `python bench/gpu.py [--model u2netp]`.

CI and the development machines have no GPU, so this is the one script to run where there is one
(docs/performance.md quotes its figures). Everything goes through the service's own code: the
model registry with TRIALZONE_PROVIDER=cuda, ``LoadedModel.run`` (admission, batcher, executor),
the family's pre/post-processing and the PNG encoder.

  1. agreement  the model on CUDA (the service's options: TF32 off) against the same model on
                CPU, real photos: mask IoU and the largest matte difference; the same for ORT's
                default (TF32 on), with both run times; the rows of one batched run against
                single runs.
  2. batching   closed-loop load straight into ``LoadedModel.run`` (concurrency 1..16, the same
                real photos' model inputs): one by one (TRIALZONE_BATCHING=off) and the
                symbolic batch with the dynamic batcher (on, 3 ms wait), each with 1 and 2
                workers: images/s, p50, p99, rows per run.
  3. pipeline   per photo size, where a request's time goes on this host: decode, preprocess,
                session.run on CUDA and on this host's CPU, matte, PNG encode (medians).

Prints tables and writes bench/out/gpu.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from common import ROOT, photo_jpeg, timed  # noqa: E402
from report import LINES, median, percentile, say, table  # noqa: E402

from app.imaging.png import encode_png  # noqa: E402
from app.inference.families import CUTOUT_FAMILIES  # noqa: E402
from app.inference.registry import LoadedModel, ModelRegistry  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.photos import iou  # noqa: E402

PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")
OUT = BENCH / "out"
ACCEL = "cuda"  # --provider cpu: a dry run of this script on a machine without a GPU


def load_model(name: str, provider: str, batching: str = "off", workers: int = 1, wait_ms: float = 0.0) -> LoadedModel:
    settings = Settings.from_env(
        models_dir=str(ROOT / "models"), models=name, provider=provider, batching=batching,
        inference_workers=workers, batch_max_wait_ms=wait_ms, queue_size=256,
    )
    registry = ModelRegistry(settings)
    registry.load()
    registry.warm_up()  # a batched model meets every batch size here
    return registry.get(name)


def photo_inputs(model: LoadedModel, megapixels: float = 1.0) -> list[tuple[Image.Image, dict]]:
    family = CUTOUT_FAMILIES[model.spec.family]
    photos = [Image.open(io.BytesIO(photo_jpeg(megapixels, name))).convert("RGB") for name in PHOTOS]
    return [(photo, family.preprocess(photo, model.input_names[0])) for photo in photos]


def matte(model: LoadedModel, outputs: list[np.ndarray]) -> np.ndarray:
    return CUTOUT_FAMILIES[model.spec.family].matte(outputs)


def compared(a: np.ndarray, b: np.ndarray) -> tuple[str, int]:
    """Two mattes: mask IoU (alpha >= 128, as the other benches) and the largest difference."""
    return f"{iou(a, b):.4f}", int(np.abs(a.astype(int) - b.astype(int)).max())


def agreement(name: str) -> None:
    gpu, cpu = load_model(name, ACCEL, "on"), load_cpu(name)
    rows = []
    inputs = photo_inputs(gpu)
    for photo_name, (_, feeds) in zip(PHOTOS, inputs):
        rows.append((photo_name, *compared(matte(gpu, gpu.run_sync(feeds)), matte(cpu, cpu.run_sync(feeds)))))
    table(f"1. {name} on {gpu.provider} vs CPU, 1 MP photos", ("photo", "mask IoU", "max matte diff (of 255)"), rows)
    if gpu.provider == "CUDAExecutionProvider":
        tf32(gpu, inputs)
    if gpu.batcher is not None:
        singles = [gpu.run_sync(feeds)[0] for _, feeds in inputs * 2]
        stacked = {k: np.concatenate([feeds[k] for _, feeds in inputs * 2]) for k in inputs[0][1]}
        batched = gpu.run_sync(stacked)[0]
        worst = max(float(np.abs(batched[i] - single[0]).max()) for i, single in enumerate(singles))
        say(f"   batch of {len(singles)} rows vs single runs: largest difference {worst:.2e} (model output, 0..1)")
    else:
        say("   (no batcher on this model: its family is not batch-agnostic)")
    gpu.close()


def tf32(gpu: LoadedModel, inputs) -> None:
    """The service turns TF32 convolutions off (app/inference/providers.py); ORT's default is on:
    that default against the CPU, and the run times of both."""
    import onnxruntime as ort

    fast = ort.InferenceSession(str(ROOT / "models" / gpu.spec.file),
                                providers=[("CUDAExecutionProvider", {"use_tf32": "1"}), "CPUExecutionProvider"])
    rows = []
    for photo_name, (_, feeds) in zip(PHOTOS, inputs):
        approx, cpu = matte(gpu, fast.run(None, feeds)), matte(gpu, load_cpu(gpu.spec.name).run_sync(feeds))
        rows.append((photo_name, *compared(approx, cpu),
                     f"{timed(lambda: fast.run(None, feeds), 20)[0] * 1000:.2f}",
                     f"{timed(lambda: gpu.run_sync(feeds), 20)[0] * 1000:.2f}"))
    table("   ORT's default, TF32 on, vs CPU; run times (the service runs with TF32 off)",
          ("photo", "mask IoU", "max matte diff", "run ms TF32 on", "run ms TF32 off"), rows)


@functools.cache
def load_cpu(name: str) -> LoadedModel:
    """The CPU reference, loaded once for the tables that compare with it."""
    return load_model(name, "cpu")


async def closed_loop(model: LoadedModel, feeds: list[dict], concurrency: int, total: int):
    latencies: list[float] = []
    issued = 0

    async def client(i: int) -> None:
        nonlocal issued
        while issued < total:
            issued += 1
            started = time.perf_counter()
            await model.run(feeds[(i + issued) % len(feeds)])
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return total / (time.perf_counter() - started), latencies


def batching(name: str, levels: list[int], total: int) -> None:
    rows = []
    for batching_mode, workers, wait_ms in (("off", 1, 0), ("off", 2, 0), ("on", 1, 3), ("on", 2, 3)):
        model = load_model(name, ACCEL, batching_mode, workers, wait_ms)
        sizes: list[int] = []
        if model.batcher is not None:
            model.batcher.on_batch = sizes.append
        feeds = [f for _, f in photo_inputs(model)]
        label = f"batcher, wait {wait_ms:g} ms" if model.batcher else "one by one"
        label += f", {workers} worker{'s' if workers > 1 else ''}"
        for concurrency in levels:
            asyncio.run(closed_loop(model, feeds, concurrency, max(concurrency, 16)))  # settle
            sizes.clear()
            rate, lat = asyncio.run(closed_loop(model, feeds, concurrency, total))
            mean_rows = f"{statistics.fmean(sizes):.2f}" if sizes else "1"
            rows.append((label, concurrency, f"{rate:.0f}", f"{median(lat) * 1000:.2f}",
                         f"{percentile(lat, 99) * 1000:.2f}", mean_rows))
            print("  ", *rows[-1], flush=True)  # progress: a run cut short still says how far it got
        model.close()
    table(f"2. {name}, {total} runs per cell straight into LoadedModel.run ({ACCEL})",
          ("policy", "concurrency", "images/s", "p50 ms", "p99 ms", "rows per run"), rows)


def pipeline(name: str, sizes: list[float], repeat: int) -> None:
    gpu, cpu = load_model(name, ACCEL), load_cpu(name)
    family = CUTOUT_FAMILIES[gpu.spec.family]
    rows = []
    for megapixels in sizes:
        jpeg = photo_jpeg(megapixels, "chelsea")
        decode, _, photo = timed(lambda: Image.open(io.BytesIO(jpeg)).convert("RGB"), repeat)
        prep, _, feeds = timed(lambda: family.preprocess(photo, gpu.input_names[0]), repeat)
        run_gpu, _, outputs = timed(lambda: gpu.run_sync(feeds), repeat)
        run_cpu, _, _ = timed(lambda: cpu.run_sync(feeds), repeat)
        post, _, mask = timed(lambda: family.postprocess_array(outputs, photo.size), repeat)
        rgba = np.dstack([np.asarray(photo), mask])
        png, _, _ = timed(lambda: encode_png(rgba), repeat)
        total = decode + prep + run_gpu + post + png
        steps = (decode, prep, run_gpu, run_cpu, post, png, total)
        rows.append((f"{photo.width}x{photo.height}", *(f"{t * 1000:.1f}" for t in steps), f"{run_gpu / total:.0%}"))
    table(f"3. {name}: a request's steps on this host (medians of {repeat})",
          ("photo", "decode ms", "preprocess ms", f"run {ACCEL} ms", "run CPU ms", "matte ms", "PNG ms",
           f"total ({ACCEL}) ms", "run's share"), rows)
    gpu.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="u2netp")
    parser.add_argument("--concurrency", default="1,2,4,8,16")
    parser.add_argument("--requests", type=int, default=400, help="runs per cell of the batching table")
    parser.add_argument("--sizes", default="1,12", help="photo sizes of the pipeline table, in megapixels")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--provider", default="cuda", choices=("cuda", "cpu"))
    args = parser.parse_args()
    global ACCEL
    ACCEL = args.provider
    import onnxruntime as ort

    say(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}")
    try:
        import torch  # only to name the card, where it is installed

        say(f"device: {torch.cuda.get_device_name(0)}")
    except Exception:
        pass
    agreement(args.model)
    batching(args.model, [int(c) for c in args.concurrency.split(",")], args.requests)
    pipeline(args.model, [float(s) for s in args.sizes.split(",")], args.repeat)
    OUT.mkdir(exist_ok=True)
    (OUT / "gpu.txt").write_text("\n".join(LINES) + "\n")


if __name__ == "__main__":
    main()
