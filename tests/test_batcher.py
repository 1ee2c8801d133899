"""The dynamic batcher's logic, on CPU with stand-in run functions (no GPU here; the CUDA path
uses the same code with session.run as the run function)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from app.inference.batcher import Batcher, batchable
from app.inference.registry import wants_batching
from app.settings import Settings

MODELS = Path(__file__).resolve().parent.parent / "models"


class Recorder:
    """A run function that records each batch and answers row i with input row i times 2."""

    def __init__(self, delay: float = 0.0, fail: Exception | None = None):
        self.batches: list[np.ndarray] = []
        self.delay, self.fail = delay, fail
        self.lock = threading.Lock()

    def __call__(self, feeds):
        x = feeds["x"]
        with self.lock:
            self.batches.append(x.copy())
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return [x * 2, x.sum(axis=(1, 2), keepdims=True)]

    @property
    def sizes(self) -> list[int]:
        return [b.shape[0] for b in self.batches]


def feeds(value: float, rows: int = 1, side: int = 4) -> dict[str, np.ndarray]:
    return {"x": np.full((rows, side, side), value, dtype=np.float32)}


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(2)
    yield pool
    pool.shutdown(wait=True)


async def test_concurrent_requests_share_one_run_and_get_their_own_rows(executor):
    run = Recorder()
    batcher = Batcher(run, max_size=8, max_wait=0.05, executor=executor)
    results = await asyncio.gather(*(batcher.run(feeds(i)) for i in range(5)))
    assert run.sizes == [5]  # one session.run for all five
    for i, (doubled, total) in enumerate(results):
        assert doubled.shape == (1, 4, 4) and (doubled == 2 * i).all()  # routed to the right caller
        assert total.shape == (1, 1, 1) and total[0, 0, 0] == 16 * i


async def test_max_size_splits_batches(executor):
    run = Recorder()
    batcher = Batcher(run, max_size=4, max_wait=0.05, executor=executor, max_in_flight=2)
    results = await asyncio.gather(*(batcher.run(feeds(i)) for i in range(10)))
    assert sorted(run.sizes) == [2, 4, 4]
    assert [float(r[0][0, 0, 0]) for r in results] == [2.0 * i for i in range(10)]


async def test_full_batch_goes_without_waiting(executor):
    batcher = Batcher(Recorder(), max_size=3, max_wait=5.0, executor=executor)
    started = time.perf_counter()
    await asyncio.gather(*(batcher.run(feeds(i)) for i in range(3)))
    assert time.perf_counter() - started < 1.0  # not the 5 s max wait


async def test_max_wait_is_honoured(executor):
    run = Recorder()
    batcher = Batcher(run, max_size=8, max_wait=0.2, executor=executor)
    started = time.perf_counter()
    first = asyncio.ensure_future(batcher.run(feeds(1)))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(batcher.run(feeds(2)))  # joins the first one's batch
    await asyncio.gather(first, second)
    elapsed = time.perf_counter() - started
    assert 0.18 <= elapsed < 0.6, elapsed  # waited for company up to max_wait, not for the second's
    assert run.sizes == [2]


async def test_lone_request_waits_at_most_max_wait(executor):
    batcher = Batcher(Recorder(), max_size=8, max_wait=0.01, executor=executor)
    started = time.perf_counter()
    await batcher.run(feeds(1))
    assert time.perf_counter() - started < 0.5


async def test_requests_gather_while_the_model_is_busy(executor):
    run = Recorder(delay=0.2)
    batcher = Batcher(run, max_size=8, max_wait=0.0, executor=executor, max_in_flight=1)
    first = asyncio.ensure_future(batcher.run(feeds(0)))
    await asyncio.sleep(0.05)  # the first batch is running now
    rest = [asyncio.ensure_future(batcher.run(feeds(i))) for i in range(1, 5)]
    await asyncio.gather(first, *rest)
    assert run.sizes == [1, 4]  # the four that came during the run went together, after it


async def test_an_error_reaches_every_caller_in_the_batch(executor):
    batcher = Batcher(Recorder(fail=RuntimeError("CUDA out of memory")), max_size=8, max_wait=0.05,
                      executor=executor)
    results = await asyncio.gather(*(batcher.run(feeds(i)) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "out of memory" in str(r) for r in results)
    # and the batcher still works afterwards
    batcher.run_batch = Recorder()
    (doubled, _), = await asyncio.gather(batcher.run(feeds(7)))
    assert (doubled == 14).all()


async def test_different_shapes_never_share_a_run(executor):
    run = Recorder()
    batcher = Batcher(run, max_size=8, max_wait=0.05, executor=executor, max_in_flight=2)
    results = await asyncio.gather(batcher.run(feeds(1, side=4)), batcher.run(feeds(2, side=6)),
                                   batcher.run(feeds(3, side=4)))
    assert sorted(run.sizes) == [1, 2]
    assert [r[0].shape for r in results] == [(1, 4, 4), (1, 6, 6), (1, 4, 4)]
    assert [float(r[0].flat[0]) for r in results] == [2.0, 4.0, 6.0]


async def test_multi_row_requests_keep_their_rows(executor):
    run = Recorder()
    batcher = Batcher(run, max_size=8, max_wait=0.05, executor=executor)
    a, b = await asyncio.gather(batcher.run(feeds(1, rows=3)), batcher.run(feeds(5, rows=2)))
    assert run.sizes == [5]
    assert a[0].shape == (3, 4, 4) and (a[0] == 2).all()
    assert b[0].shape == (2, 4, 4) and (b[0] == 10).all()


async def test_a_cancelled_caller_is_skipped(executor):
    run = Recorder()
    batcher = Batcher(run, max_size=8, max_wait=0.1, executor=executor)
    gone = asyncio.ensure_future(batcher.run(feeds(1)))
    stays = asyncio.ensure_future(batcher.run(feeds(2)))
    await asyncio.sleep(0.01)
    gone.cancel()
    doubled, _ = await stays
    assert (doubled == 4).all() and run.sizes == [1]


def _tiny_model(path: Path, batch) -> Path:
    """y = 2x with the given first dimension (an int: fixed; a string: symbolic)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "tiny", [x], [y], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


async def test_a_real_session_with_a_dynamic_batch(tmp_path, executor):
    session = ort.InferenceSession(str(_tiny_model(tmp_path / "dyn.onnx", "N")), providers=["CPUExecutionProvider"])
    assert batchable(session)
    batcher = Batcher(lambda f: session.run(None, f), max_size=4, max_wait=0.05, executor=executor)
    inputs = [np.full((1, 3), i, dtype=np.float32) for i in range(6)]
    results = await asyncio.gather(*(batcher.run({"x": x}) for x in inputs))
    for x, (y,) in zip(inputs, results):
        assert (y == 2 * x).all()


def test_only_dynamic_batch_models_on_cuda_are_batched(tmp_path):
    fixed = ort.InferenceSession(str(_tiny_model(tmp_path / "fixed.onnx", 1)), providers=["CPUExecutionProvider"])
    dynamic = ort.InferenceSession(str(_tiny_model(tmp_path / "dyn.onnx", "N")), providers=["CPUExecutionProvider"])
    assert not batchable(fixed)
    settings = Settings()
    assert settings.batching == "auto"
    assert wants_batching(settings, "CUDAExecutionProvider", dynamic)
    assert not wants_batching(settings, "CPUExecutionProvider", dynamic)  # CPU stays unbatched
    assert not wants_batching(settings, "CUDAExecutionProvider", fixed)
    assert wants_batching(settings.replace(batching="on"), "CPUExecutionProvider", dynamic)
    assert not wants_batching(settings.replace(batching="off"), "CUDAExecutionProvider", dynamic)


@pytest.mark.skipif(not (MODELS / "u2netp.onnx").exists(), reason="u2netp not fetched")
def test_u2netp_has_a_fixed_batch_of_one():
    session = ort.InferenceSession(str(MODELS / "u2netp.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 320, 320]
    assert not batchable(session)
