"""The one place that picks the ONNX Runtime execution provider.

rembg's users lost weeks to a silent CPU fallback when CUDA libraries were missing, so asking
for ``cuda`` and not getting it is a startup error, never a warning.
"""

from __future__ import annotations

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


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    """Options shared by every session: full graph optimisation, sequential execution.

    One intra-op pool per session sized to the cores (0 = ORT picks one per core); requests for
    the same model queue in front of it instead of oversubscribing the CPU with many pools.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options
