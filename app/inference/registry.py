"""The model registry: one ONNX Runtime session per model per process, created at startup.

Fed by models/manifest.toml. ``load()`` checks every wanted weight file (present, sha256) and
creates its session with the provider from settings; ``warm_up()`` runs each once so the first
request is as fast as the tenth. Runs go through a per-model thread pool behind admission
control, so inference never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.errors import ModelUnavailable
from app.inference import providers
from app.inference.admission import Admission
from app.inference.families import CUTOUT_FAMILIES
from app.inference.manifest import ModelSpec, load_manifest, model_state
from app.metrics import INFERENCE_SECONDS
from app.settings import Settings

log = logging.getLogger(__name__)


class ModelStartupError(RuntimeError):
    """A wanted model is missing or corrupt: the message names the command that fixes it."""


class LoadedModel:
    def __init__(self, spec: ModelSpec, session: ort.InferenceSession, provider: str, settings: Settings):
        self.spec = spec
        self.session = session
        self.provider = provider
        self.input_names = [i.name for i in session.get_inputs()]
        self.admission = Admission(
            spec.name, workers=settings.inference_workers, queue_size=settings.queue_size,
            retry_after=settings.busy_retry_after,
        )
        self._executor = ThreadPoolExecutor(settings.inference_workers, thread_name_prefix=f"ort-{spec.name}")

    def run_sync(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        started = time.perf_counter()
        outputs = self.session.run(None, feeds)
        INFERENCE_SECONDS.labels(self.spec.name).observe(time.perf_counter() - started)
        return outputs

    async def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run off the event loop, behind this model's bounded line (503 busy when full)."""
        async with self.admission.slot():
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self.run_sync, feeds)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class ModelRegistry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.models_dir = Path(settings.models_dir)
        self.manifest = load_manifest(self.models_dir)
        self.models: dict[str, LoadedModel] = {}
        self.ready = False

    def wanted(self) -> list[ModelSpec]:
        """TRIALZONE_MODELS when set, else every installed, verified model in the manifest."""
        if self.settings.models.strip():
            names = [n.strip() for n in self.settings.models.split(",") if n.strip()]
            unknown = [n for n in names if n not in self.manifest]
            if unknown:
                raise ModelStartupError(f"TRIALZONE_MODELS names unknown model(s): {', '.join(unknown)}")
            return [self.manifest[n] for n in names]
        specs = []
        for spec in self.manifest.values():
            state = model_state(spec, self.models_dir)
            if state == "corrupt":
                raise ModelStartupError(_fix_message(spec, "corrupt (sha256 mismatch)"))
            if state == "installed":
                specs.append(spec)
        return specs

    def load(self) -> None:
        """Create every wanted session; refuse to start on a missing or corrupt file."""
        specs = self.wanted()
        for spec in specs:
            state = model_state(spec, self.models_dir)
            if state != "installed":
                raise ModelStartupError(_fix_message(spec, state))
        if not any(s.task == "cutout" for s in specs):
            raise ModelStartupError(
                "no cutout model is installed; run `python -m app models fetch` (u2netp and multistyle26)"
            )
        requested = providers.requested_providers(self.settings.provider)
        options = providers.session_options(self.settings.inference_threads)
        for spec in specs:
            session = ort.InferenceSession(str(self.models_dir / spec.file), options, providers=requested)
            active = providers.check_active(session, self.settings.provider, requested, spec.name)
            self.models[spec.name] = LoadedModel(spec, session, active, self.settings)
            log.info("model %s loaded on %s", spec.name, active)

    def warm_up(self) -> None:
        """One run per cutout model (and a small one per style model) so request 1 is not slow."""
        from app.pets.stylize import warm_up_style_models

        for model in self.models.values():
            family = CUTOUT_FAMILIES.get(model.spec.family)
            if family is not None:
                model.run_sync(family.dummy_feeds(model.input_names[0]))
        warm_up_style_models(self)
        self.ready = True

    def get(self, name: str, task: str | None = None) -> LoadedModel:
        model = self.models.get(name)
        if model is None or (task and model.spec.task != task):
            installed = ", ".join(self.names(task or "cutout")) or "none"
            raise ModelUnavailable(f"model {name!r} is not installed here (installed: {installed})", model=name)
        return model

    def names(self, task: str) -> list[str]:
        return [n for n, m in self.models.items() if m.spec.task == task]

    def close(self) -> None:
        for model in self.models.values():
            model.close()


def _fix_message(spec: ModelSpec, state: str) -> str:
    return f"model {spec.name} is {state} in its folder; run `python -m app models fetch {spec.name}`"
