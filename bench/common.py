"""Shared by the benchmarks: real photos at set sizes, a server process, medians."""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live import LiveServer, free_port, server_env  # noqa: E402


def photo_jpeg(megapixels: float, name: str = "chelsea") -> bytes:
    """A real photo resized to about ``megapixels``, as a phone-quality JPEG."""
    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def timed(fn, repeat: int) -> tuple[float, list[float], object]:
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), samples, result


def start_server(**env: str) -> LiveServer:
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    return LiveServer(server_env(tmp, **env), free_port(), tmp / "server.log").start()


os.environ.setdefault("U2NET_HOME", str(ROOT / "models"))
