"""Server processes, closed-loop load and RSS sampling for bench/run.py."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from typing import Callable

import httpx
import psutil

from common import LiveServer


class ServerProcess(LiveServer):
    """Any HTTP server as a child process on loopback (ours, an older checkout of ours, `rembg s`),
    with what the bench measures of it: RSS, CPU time, peak RSS."""

    def __init__(self, name: str, argv: list[str], *, cwd: Path, env: dict[str, str], port: int, ready_path: str,
                 log_path: Path):
        super().__init__(env, port, log_path, argv=argv, cwd=cwd, ready_path=ready_path, name=name)

    def start(self, timeout: float = 180) -> "ServerProcess":
        super().start(timeout=timeout)
        return self

    def rss(self) -> int:
        """Resident set of the server and any children it started, in bytes."""
        try:
            proc = psutil.Process(self.pid)
            return proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.Error:
            return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server (and its children) so far."""
        try:
            proc = psutil.Process(self.pid)
            return sum(proc.cpu_times()[:2]) + sum(sum(c.cpu_times()[:2]) for c in proc.children(recursive=True))
        except psutil.Error:
            return 0.0

    def peak_rss(self) -> int:
        """The kernel's high-water mark of the server's resident set since it started (VmHWM)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


class RssSampler:
    """Samples a server's RSS every ``interval`` seconds in a thread; ``peak`` is the highest seen."""

    def __init__(self, server: ServerProcess, interval: float = 0.05):
        self.server, self.interval = server, interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.rss())


class LoadResult:
    def __init__(self, latencies: list[float], errors: dict[str, int], elapsed: float):
        self.latencies, self.errors, self.elapsed = latencies, errors, elapsed

    @property
    def done(self) -> int:
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0


Send = Callable[[httpx.Client, int, int], httpx.Response]  # (client, client index, request index)


def closed_loop(base_url: str, send: Send, *, concurrency: int, requests: int,
                on_progress: Callable[[int], None] | None = None) -> LoadResult:
    """``concurrency`` clients, each sending its next request as soon as its last one is answered,
    until ``requests`` have been sent. Latency counts successful (2xx) answers only; anything else
    (a status, a timeout, a dropped connection) is an error, by kind."""
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}

    def client(index: int) -> None:
        with httpx.Client(base_url=base_url, timeout=300) as http:
            while True:
                i = next(counter)
                if i >= requests:
                    return
                started = time.perf_counter()
                try:
                    response = send(http, index, i)
                    ok, kind = response.is_success, f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    ok, kind = False, type(exc).__name__
                elapsed = time.perf_counter() - started
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors[kind] = errors.get(kind, 0) + 1
                    finished = len(latencies) + sum(errors.values())
                if on_progress is not None:
                    on_progress(finished)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(latencies, errors, time.perf_counter() - started)


def mib(value: int) -> float:
    return value / (1 << 20)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
