"""The peer server: rembg's own `rembg s`, in its own virtual environment under bench/out/.

A separate venv keeps rembg's server dependencies (FastAPI, gradio, ...) out of ours and runs
the version pip resolves today. It reads the same u2netp weights as we do: rembg looks for
``$U2NET_HOME/u2netp.onnx`` (and checks its md5) before it would download anything.

API (rembg/commands/s_command.py): ``POST /api/remove`` multipart, the photo in ``file``, the
model name in the ``model`` form field; answers ``image/png``. Requests run ``remove()`` in
FastAPI's thread pool (anyio's 40 threads unless ``--threads``), each call inside one shared
ONNX Runtime session with ORT's default options; the session is made on the first request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from load import ServerProcess

SPEC = "rembg[cpu,cli]"


def venv_dir(out: Path) -> Path:
    return out / "rembg-venv"


def ensure_venv(out: Path, log) -> Path:
    """bench/out/rembg-venv with `rembg s` installed (made once, reused after)."""
    venv = venv_dir(out)
    rembg = venv / "bin" / "rembg"
    if rembg.exists():
        return rembg
    log(f"installing {SPEC} into {venv} (once; a few minutes) ...")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + [SPEC], check=True)
    return rembg


def versions(out: Path) -> str:
    python = venv_dir(out) / "bin" / "python"
    code = ("import importlib.metadata as m; "
            "print(f\"rembg {m.version('rembg')}, onnxruntime {m.version('onnxruntime')}\")")
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.strip()


def server(out: Path, models: Path, port: int, log_path: Path) -> ServerProcess:
    rembg = ensure_venv(out, print)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIALZONE_", "VIRTUAL_ENV"))}
    env.update({"U2NET_HOME": str(models), "NUMBA_CACHE_DIR": str(out / "numba-cache")})
    argv = [str(rembg), "s", "--host", "127.0.0.1", "--port", str(port), "--log_level", "warning", "--no-ui"]
    # The first start imports pymatting, which numba compiles (~1-2 min here); later starts use the cache.
    return ServerProcess("rembg s", argv, cwd=out, env=env, port=port, ready_path="/api",
                         log_path=log_path)


def send(http: httpx.Client, data: bytes, model: str = "u2netp") -> httpx.Response:
    return http.post("/api/remove", files={"file": ("photo.jpg", data, "image/jpeg")}, data={"model": model})
