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
    """A server as a real process on loopback: ``python -m app serve`` from this checkout unless
    ``argv`` says otherwise (the benchmarks also run an older checkout and `rembg s`)."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path, *, argv: list[str] | None = None,
                 cwd: Path = ROOT, ready_path: str = "/readyz", name: str = "server"):
        self.env, self.port, self.log_path = env, port, log_path
        self.argv = argv or [sys.executable, "-m", "app", "serve", "--port", str(port)]
        self.cwd, self.ready_path, self.name = cwd, ready_path, name
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True, timeout: float = 120) -> "LiveServer":
        """Start it and wait until ``ready_path`` answers 200 (``/healthz`` when not ``wait_ready``)."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        path = self.ready_path if wait_ready else "/healthz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready after {timeout:.0f} s (log: {self.log_path})")

    @property
    def pid(self) -> int:
        return self.process.pid

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
