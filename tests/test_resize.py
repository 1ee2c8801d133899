"""The banded resize gives Pillow's own pixels: the model's input must not change by a bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.imaging import resize as banded
from tests.photos import photo

LANCZOS = Image.Resampling.LANCZOS
# Phone shapes (4:3, 3:4, 9:16, 16:9), odd sizes, a very tall strip, and sizes drawn at random.
SIZES = [(1226, 816), (816, 1226), (4032, 3024), (3024, 4032), (1080, 1920), (1920, 1080), (1001, 999),
         (2047, 1535), (640, 481), (700, 3000), (999, 1001), (300, 900)] + [
    tuple(int(v) for v in np.random.default_rng(7).integers(500, 4200, 2)) for _ in range(12)
]


@pytest.fixture(params=[2, 4], ids=["2 bands", "4 bands"])
def bands(request, monkeypatch):
    monkeypatch.setattr(banded, "BANDS", request.param)
    return request.param


@pytest.mark.parametrize(("name", "out", "sizes"), [
    ("chelsea", (320, 320), SIZES),  # the U^2-Net input, every shape
    ("astronaut", (320, 320), SIZES[:6]),
    ("coffee", (1024, 1024), SIZES[:2] + SIZES[4:7] + SIZES[-5:-4]),  # ISNet's, up and down
    ("chelsea", (301, 157), SIZES[:6]),  # odd sizes: bands only where exact
    ("coffee", (320, 816), SIZES[:6]),
], ids=lambda v: str(v) if not isinstance(v, list) else "")
def test_bands_equal_pillows_resize(name, out, sizes, bands):
    for size in sizes:
        image = photo(name).resize(size)
        expected = np.asarray(image.resize(out, LANCZOS))
        got = np.asarray(banded.resize(image, out, LANCZOS))
        assert got.dtype == np.uint8 and got.shape == expected.shape
        assert np.array_equal(got, expected), f"{name} {size} -> {out}: {np.count_nonzero(got != expected)} differ"


def test_bands_run_in_parallel_only_where_they_pay(monkeypatch):
    calls = []
    submit = banded._pool.submit
    monkeypatch.setattr(banded._pool, "submit", lambda *a, **k: calls.append(a) or submit(*a, **k))
    banded.resize(photo("chelsea").resize((400, 300)), (320, 320), LANCZOS)  # 0.12 MP: one thread
    assert calls == []
    banded.resize(photo("chelsea").resize((1226, 816)), (320, 320), LANCZOS)  # bands, each through both passes
    assert len(calls) == banded.BANDS - 1


def test_a_band_queued_behind_busy_threads_is_done_by_the_caller():
    """Under load the pool may be busy with other requests' bands: the caller does its own
    instead of waiting for them."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    release = threading.Event()
    blockers = [banded._pool.submit(release.wait) for _ in range(banded._pool._max_workers)]
    image = photo("chelsea").resize((1226, 816))
    with ThreadPoolExecutor(1) as caller:
        pending = caller.submit(banded.resize, image, (320, 320), LANCZOS)
        try:
            got = pending.result(timeout=30)  # without the steal it waits until `release`
        finally:
            release.set()
            for blocker in blockers:
                blocker.result()
    assert np.array_equal(np.asarray(got), np.asarray(image.resize((320, 320), LANCZOS)))
