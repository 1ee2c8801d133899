"""A real server process on loopback, for tests and benchmarks whose path crosses HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MODELS = str(ROOT / "models")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``python -m app serve`` as a real process on loopback."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path):
        self.env, self.port, self.log_path = env, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True) -> "LiveServer":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        path = "/readyz" if wait_ready else "/healthz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def server_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALZONE_")}
    env.update({
        "TRIALZONE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/trialzone.db",
        "TRIALZONE_STORAGE_URL": f"file://{tmp_path}/blobs",
        "TRIALZONE_MODELS_DIR": MODELS,
        "TRIALZONE_MODELS": "u2netp,u2net",
        "TRIALZONE_PROVIDER": "cpu",
        "TRIALZONE_DEV_USER_HEADER": "X-User-Id",
        "TRIALZONE_ADMIN_TOKEN": "admin-secret",
    })
    env.update(overrides)
    return env
