"""Admission control: a bounded wait line in front of each model.

A full line answers 503 ``busy`` with Retry-After at once, instead of letting requests pile up
until they time out on the client (which is what unbounded queues in the peers do).
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from app.errors import Busy
from app.metrics import QUEUE_DEPTH, REJECTED_BUSY


class Admission:
    def __init__(self, model: str, *, workers: int, queue_size: int, retry_after: int):
        self.model = model
        self.limit = workers + queue_size
        self.retry_after = retry_after
        self.in_flight = 0  # touched only from the event loop thread

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.in_flight >= self.limit:
            REJECTED_BUSY.labels(self.model).inc()
            raise Busy(
                f"model {self.model} has {self.in_flight} requests in line",
                headers={"Retry-After": str(self.retry_after)},
            )
        self.in_flight += 1
        QUEUE_DEPTH.labels(self.model).set(self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            QUEUE_DEPTH.labels(self.model).set(self.in_flight)
