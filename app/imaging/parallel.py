"""Run a picture's pieces (bands, strips) on a thread pool, the calling thread working too.

The caller takes the first piece itself instead of waiting idle, and afterwards does any piece
still queued (the pool busy with other requests' pieces) rather than waiting its turn: under
load no request's thread sits idle behind another's work, and alone it saves a hand-off.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


def run_all(pool: Executor, jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Every job's result, in order."""
    queued = [pool.submit(job) for job in jobs[1:]]
    results = [jobs[0]()] if jobs else []
    results += [job() if future.cancel() else future.result() for job, future in zip(jobs[1:], queued)]
    return results
