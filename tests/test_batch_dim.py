"""The symbolic batch dimension (app/inference/batch_dim.py) on the real u2netp, on CPU: the rows
of one batched run equal single runs of the shipped graph, and the registry hands the rewritten
graph to the batcher only when asked to (TRIALZONE_BATCHING=on)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from app.inference.batch_dim import with_dynamic_batch
from app.inference.families import u2net
from app.inference.manifest import load_manifest, model_state
from app.inference.registry import ModelRegistry
from tests.conftest import MODELS as MODELS_DIR, make_settings
from tests.photos import photo

MODELS = Path(MODELS_DIR)
pytestmark = pytest.mark.skipif(
    model_state(load_manifest(MODELS)["u2netp"], MODELS) != "installed", reason="u2netp not fetched")

CPU = ["CPUExecutionProvider"]


def test_rows_of_a_batched_run_equal_single_runs_of_the_shipped_graph():
    shipped = ort.InferenceSession(str(MODELS / "u2netp.onnx"), providers=CPU)
    batched = ort.InferenceSession(with_dynamic_batch(MODELS / "u2netp.onnx"), providers=CPU)
    assert shipped.get_inputs()[0].shape == [1, 3, 320, 320]
    assert batched.get_inputs()[0].shape == ["N", 3, 320, 320]
    assert all(out.shape[0] == "N" for out in batched.get_outputs())
    name = shipped.get_inputs()[0].name
    feeds = [u2net.preprocess(photo(n), name)[name] for n in ("chelsea", "astronaut", "coffee")]
    rows = batched.run(None, {name: np.concatenate(feeds)})
    assert rows[0].shape[0] == 3
    for i, x in enumerate(feeds):
        single = shipped.run(None, {name: x})
        for got, want in zip(rows, single):
            np.testing.assert_allclose(got[i : i + 1], want, atol=1e-4)
    # the file itself is untouched: its sha256 is still the manifest's
    assert model_state(load_manifest(MODELS)["u2netp"], MODELS) == "installed"


async def test_the_registry_batches_a_batch_agnostic_model_only_where_runs_are_shared(tmp_path):
    plain = ModelRegistry(make_settings(tmp_path, inference_workers=1))  # batching auto: no rewrite
    plain.load()
    try:
        model = plain.get("u2netp")
        assert model.batcher is None and model.session.get_inputs()[0].shape[0] == 1
    finally:
        plain.close()

    shared = ModelRegistry(make_settings(tmp_path, inference_workers=1, batching="on", batch_max_size=2,
                                         batch_max_wait_ms=200))
    shared.load()
    shared.warm_up()
    try:
        model = shared.get("u2netp")
        assert model.batcher is not None and model.session.get_inputs()[0].shape[0] == "N"
        sizes = []
        model.batcher.on_batch = sizes.append
        feeds = [u2net.preprocess(photo(n), model.input_names[0]) for n in ("chelsea", "astronaut")]
        together = await asyncio.gather(*(model.run(f) for f in feeds))
        assert sizes == [2]  # one session.run for both requests
        for f, outputs in zip(feeds, together):
            alone = model.run_sync(f)
            assert np.abs(u2net.matte(outputs).astype(int) - u2net.matte(alone).astype(int)).max() <= 1
    finally:
        shared.close()
