"""The model registry: one ONNX Runtime session per model per process, created at startup.

Fed by models/manifest.toml. ``load()`` checks every wanted weight file (present, sha256) and
creates its session with the provider from settings; ``warm_up()`` runs each once so the first
request is as fast as the tenth, and fills a twin's shared arena so that memory stays flat
(``_fill_shared_arena``). Runs go through a per-model thread pool behind admission control, so
inference never blocks the event loop.

Each model runs two requests at a time (TRIALZONE_INFERENCE_WORKERS, default 2). With CUDA, two
runs of one session overlap one's host work and copies with the other's kernels: on an H200,
u2netp answered 1.4-2.1x the images/s of one run at a time from 2 to 16 concurrent requests.
On CPU a cutout model also gets a one-thread *narrow* twin: a run that starts while another
run of the model is in progress takes the twin, so a lone request still has every core (lowest
latency) while concurrent requests run side by side on one core each, which on two cores
answers ~1.4x the images per second of one wide run after another (U^2-Net's many small
operators parallelise poorly). The two sessions draw on one shared arena
(providers.session_options), so the twin costs ~0.3 GB rather than a second arena's ~0.6 GB
(docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from prometheus_client import Histogram

from app.errors import ModelUnavailable
from app.imaging.memory import tune_allocator
from app.inference import providers
from app.inference.admission import Admission
from app.inference.batch_dim import with_dynamic_batch
from app.inference.batcher import Batcher, batchable
from app.inference.families import CUTOUT_FAMILIES
from app.inference.manifest import ModelSpec, load_manifest, model_state
from app.metrics import INFERENCE_SECONDS
from app.settings import Settings

log = logging.getLogger(__name__)


class ModelStartupError(RuntimeError):
    """A wanted model is missing or corrupt: the message names the command that fixes it."""


class LoadedModel:
    def __init__(self, spec: ModelSpec, session: ort.InferenceSession, provider: str, settings: Settings,
                 narrow: ort.InferenceSession | None = None, workers: int = 1):
        self.spec = spec
        self.session = session
        self.narrow = narrow  # the one-thread twin for runs that start while another runs
        self._running = 0  # runs in progress; touched only from the event loop thread
        self.provider = provider
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self.admission = Admission(
            spec.name, workers=workers, queue_size=settings.queue_size,
            retry_after=settings.busy_retry_after,
        )
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"ort-{spec.name}")
        self.batcher: Batcher | None = None
        if wants_batching(settings, provider, session):
            self.batcher = Batcher(
                self.run_sync, max_size=settings.batch_max_size, max_wait=settings.batch_max_wait_ms / 1000,
                max_in_flight=workers, executor=self._executor,
                on_batch=BATCH_ROWS.labels(spec.name).observe,
            )

    def run_sync(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None,
                 session: ort.InferenceSession | None = None) -> list[np.ndarray]:
        started = time.perf_counter()
        results = (session or self.session).run(outputs, feeds)
        INFERENCE_SECONDS.labels(self.spec.name).observe(time.perf_counter() - started)
        # Own the memory before the next run starts: ORT's arrays point into its arena, and an
        # output a request still holds while the next run allocates makes the arena grow by a
        # whole new region (+35 MB steps in the soak).
        return [np.array(r) if isinstance(r, np.ndarray) and r.base is not None else r for r in results]

    async def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """Run off the event loop, behind this model's bounded line (503 busy when full).
        ``outputs``: the names wanted (default: all, in the model's order)."""
        async with self.admission.slot():
            if self.batcher is not None:  # shares one session.run with concurrent requests
                results = await self.batcher.run(feeds)
                if outputs is None:
                    return results
                return [results[self.output_names.index(name)] for name in outputs]
            # Alone: the wide session and every core. Beside another run: the narrow twin.
            session = self.narrow if self._running and self.narrow is not None else self.session
            self._running += 1
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.run_sync, feeds, outputs, session)
            finally:
                self._running -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class ModelRegistry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.models_dir = Path(settings.models_dir)
        self.manifest = load_manifest(self.models_dir)
        self.models: dict[str, LoadedModel] = {}
        self.workers = 1  # concurrent runs per model, settled by load()
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
        tune_allocator()  # before the first pixel buffer: big buffers via mmap (app/imaging/memory.py)
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
        options = providers.session_options(
            self.settings.inference_threads, spinning=self.settings.inference_spinning,
            mem_arena=self.settings.inference_mem_arena, mem_pattern=self.settings.inference_mem_pattern,
        )
        cpu_only = requested == [providers.CPU]
        self.workers = self.settings.inference_workers or 2
        # Twins on CPU only (a cutout model's wide session and its twin share one arena), and not
        # under TRIALZONE_BATCHING=on, where the batcher takes every run and a twin would sit idle.
        twins = (cpu_only and self.workers > 1 and self.settings.inference_threads != 1
                 and self.settings.batching != "on")
        if twins:
            wide_options, narrow_options = (providers.session_options(
                threads, spinning=self.settings.inference_spinning, mem_arena=self.settings.inference_mem_arena,
                mem_pattern=self.settings.inference_mem_pattern, shared_arena=True,
            ) for threads in (self.settings.inference_threads, 1))
        for spec in specs:
            hot = twins and spec.task == "cutout"  # the hot path
            session = ort.InferenceSession(self._graph(spec), wide_options if hot else options,
                                           providers=requested, provider_options=providers.provider_options(requested))
            active = providers.check_active(session, self.settings.provider, requested, spec.name)
            narrow = None
            if hot:
                narrow = ort.InferenceSession(str(self.models_dir / spec.file), narrow_options, providers=requested)
            self.models[spec.name] = LoadedModel(spec, session, active, self.settings, narrow, self.workers)
            log.info("model %s loaded on %s (batched runs: %s)", spec.name, active,
                     "yes" if self.models[spec.name].batcher else "no")

    def _graph(self, spec: ModelSpec) -> str | bytes:
        """The weight file's path; with TRIALZONE_BATCHING=on, for a family whose graphs allow it,
        the graph with a symbolic batch dimension, so that the batcher can stack requests.

        Not under ``auto``: on an H200 the batcher beat two one-by-one runs only at 16 concurrent
        requests (docs/performance.md)."""
        path = self.models_dir / spec.file
        family = CUTOUT_FAMILIES.get(spec.family)
        agnostic = getattr(family, "BATCH_AGNOSTIC", False)
        if self.settings.batching == "on" and self.settings.batch_max_size > 1 and agnostic:
            try:
                return with_dynamic_batch(path)
            except ImportError as exc:
                raise ModelStartupError(f"TRIALZONE_BATCHING=on needs the onnx package: pip install '.[gpu]' ({exc})")
        return str(path)

    def warm_up(self) -> None:
        """One run per cutout model (and a small one per style model) so request 1 is not slow."""
        from app.pets.stylize import warm_up_style_models

        for model in self.models.values():
            family = CUTOUT_FAMILIES.get(model.spec.family)
            if family is not None:
                feeds = family.dummy_feeds(model.input_names[0])
                before = _resident_bytes() or 0
                model.run_sync(feeds)
                one_run = (_resident_bytes() or 0) - before
                if model.batcher is not None:
                    # CUDA's convolutions pick their algorithms per input shape: meet every batch size now.
                    for rows in range(2, model.batcher.max_size + 1):
                        model.run_sync({name: np.repeat(value, rows, axis=0) for name, value in feeds.items()})
                if model.narrow is not None:
                    rounds = _fill_shared_arena(model, feeds, self.workers, one_run)
                    log.info("model %s: shared arena filled for %d runs at once in %d rounds",
                             model.spec.name, self.workers, rounds)
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


FILL_MAX_ROUNDS = 8
FILL_SHARE = 0.9  # of runs x one run's growth; a region short (u2netp: 50 of ~580 MiB) is below it
FILL_STALLED_BYTES = 4 << 20  # a round that grew the process less than this added no region


def _fill_shared_arena(model: LoadedModel, feeds: dict[str, np.ndarray], runs: int, one_run: int) -> int:
    """Grow the shared arena now towards what ``runs`` twin runs at once need, so that RSS is
    flat from the first request on (the soak measures it); returns the rounds it took.

    Runs at once need the most when their peaks coincide. Started together (a barrier) on an idle
    machine, two runs stay in step and one round gets there: u2netp grew the process by 291 MiB
    for one run and 577 for two. On a busy machine they drift apart and a round can stop one or
    two 50 MiB regions short; the first pair of requests that did meet at its peak then took
    them, which was the soak's ~52 MiB step at a random request. So rounds go on until the
    process has grown by ~``runs`` times ``one_run`` (what the first run grew it by), or until two
    rounds in a row add nothing (u2net's two runs overlap less: 642 MiB against 391 for one), at
    most FILL_MAX_ROUNDS. This improves the odds; it cannot force them: under a whole test
    suite's load, four rounds of u2netp grew the process by 517 MiB instead of 577."""
    start = _resident_bytes()
    # The first run's growth is in already. Without /proc: one round.
    target = 0 if start is None else start + (runs - 1) * one_run * FILL_SHARE
    barrier = threading.Barrier(runs, timeout=60)  # a run that never starts fails startup, not hangs it

    def one(_: int) -> None:
        barrier.wait()
        model.run_sync(feeds, session=model.narrow)

    rounds = stalled = 0
    now = start or 0
    with ThreadPoolExecutor(runs) as pool:
        while rounds < FILL_MAX_ROUNDS and stalled < 2 and (rounds == 0 or now < target):
            list(pool.map(one, range(runs)))
            rounds += 1
            before, now = now, _resident_bytes() or 0
            stalled = stalled + 1 if now - before < FILL_STALLED_BYTES else 0
    return rounds


def _resident_bytes() -> int | None:
    """This process's resident set (Linux's /proc/self/statm), or None where there is none."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


BATCH_ROWS = Histogram(
    "trialzone_inference_batch_rows", "Requests per batched session.run, by model",
    ["model"], buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
)


def wants_batching(settings: Settings, provider: str, session: ort.InferenceSession) -> bool:
    """Batch where the graph allows it (a dynamic first dimension): under ``auto`` on CUDA only
    (on CPU a batch of N costs about N runs); ``on`` forces it on any provider.

    u2net/u2netp as shipped declare a fixed batch of 1 ([1,3,320,320]); ``ModelRegistry._graph``
    makes it symbolic under ``on``."""
    if settings.batching == "off" or settings.batch_max_size < 2 or not batchable(session):
        return False
    return settings.batching == "on" or provider == providers.CUDA


def _fix_message(spec: ModelSpec, state: str) -> str:
    return f"model {spec.name} is {state} in its folder; run `python -m app models fetch {spec.name}`"
