"""The one place that picks the ONNX Runtime execution provider.

rembg's users lost weeks to a silent CPU fallback when CUDA libraries were missing, so asking
for ``cuda`` and not getting it is a startup error, never a warning.
"""

from __future__ import annotations

import functools
import logging

import onnxruntime as ort

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


class ProviderError(RuntimeError):
    pass


def requested_providers(setting: str) -> list[str]:
    """The provider list to hand to InferenceSession for TRIALZONE_PROVIDER."""
    available = ort.get_available_providers()
    if setting == "cpu":
        return [CPU]
    if setting == "cuda":
        if CUDA not in available:
            raise ProviderError(
                "TRIALZONE_PROVIDER=cuda but this onnxruntime has no CUDA provider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu"
            )
    elif CUDA not in available:
        return [CPU]
    _preload_cuda_libraries()
    return [CUDA, CPU]


def _preload_cuda_libraries() -> None:
    """onnxruntime-gpu's `cuda,cudnn` extras ship CUDA and cuDNN as pip wheels; preload them so
    the provider finds them without LD_LIBRARY_PATH (a no-op where the system has them)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception as exc:  # the session's provider check below gives the verdict
            log.info("CUDA library preload skipped: %s", exc)


# ORT's CUDA provider lets cuDNN convolve in TF32 (a 10-bit mantissa) by default. On an H200 that
# moved u2netp's matte by up to 23/255 from the CPU's (mask IoU 0.993); off, by 1/255 (IoU >= 0.9996)
# for 3% more model time (4.73 vs 4.57 ms), so a photo gets the same cutout on every node.
CUDA_OPTIONS = {"use_tf32": "0"}


def provider_options(requested: list[str]) -> list[dict[str, str]]:
    """InferenceSession's ``provider_options``, one dict per provider in ``requested``."""
    return [dict(CUDA_OPTIONS) if name == CUDA else {} for name in requested]


def check_active(session: ort.InferenceSession, setting: str, requested: list[str], name: str) -> str:
    """Return the provider really running ``session``; refuse a CUDA request that fell back."""
    active = session.get_providers()[0]
    if CUDA in requested and active != CUDA:
        message = (
            f"model {name}: CUDA was requested but the session runs on {active}; "
            "the CUDA/cuDNN libraries onnxruntime-gpu needs are missing or mismatched"
        )
        if setting == "cuda":
            raise ProviderError(message)
        log.warning("%s (TRIALZONE_PROVIDER=auto, continuing on CPU)", message)
    return active


def session_options(intra_op_threads: int, *, spinning: bool = False, mem_arena: bool = True,
                    mem_pattern: bool = False, shared_arena: bool = False) -> ort.SessionOptions:
    """Options shared by every session, chosen by measurement on a 2-core machine
    (docs/performance.md has the figures):

    * full graph optimisation (constant folding, fusions, NCHWc layouts): ~1.2 x faster than basic;
    * one intra-op pool per session sized to the cores (0 = ORT picks one per core), sequential
      execution (U^2-Net is a chain; inter-op parallelism has nothing to overlap); requests for the
      same model queue in front of it instead of oversubscribing the CPU with many pools;
    * no spin-waiting: ORT's pool threads otherwise spin between operators and after a run,
      taking CPU from decoding, encoding and the event loop of this very request (and from the
      other sessions in the process); on a shared 2-core machine that costs more than it saves;
    * the CPU memory arena stays on (runs without it were 1.35-1.5 x slower: every run maps and
      faults in its activations anew); memory-pattern planning is off: with the arena on, it
      adds a second ~200 MB block on the second run (u2netp: 357 MB resident with the arena
      alone, 547 MB with both) and made no measurable difference to the run time. Inputs have
      fixed shapes, so the arena reaches its size on the warm-up run and then stays flat.
    * ``shared_arena``: the session allocates from one CPU arena per process instead of its
      own (see ``_share_cpu_arena``); for a model's wide session and its one-thread twin.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = mem_arena
    options.enable_mem_pattern = mem_pattern
    options.log_severity_level = 3
    if shared_arena and mem_arena:
        _share_cpu_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


@functools.cache
def _share_cpu_arena() -> None:
    """Register one CPU arena with ORT's process-wide environment (once: cached), growing by what a run
    asks for rather than in powers of two. A model's two sessions (wide and twin) then reuse the
    same activation memory instead of each keeping its own: u2netp with its twin, after runs
    alone and two at once, +589 MiB resident instead of +921 (+329 for one session alone), and
    no growth afterwards (docs/performance.md)."""
    memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    # max_mem 0 = no cap, arena_extend_strategy 1 = kSameAsRequested, -1 = ORT's defaults
    ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, 1, -1, -1))
