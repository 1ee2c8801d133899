"""A small dynamic batcher: concurrent requests for one model share one ``session.run``.

On a GPU a batch costs less than its rows one by one (u2netp on an H200: 8 rows in 21.5 ms, one
in 5.6 ms), so requests that arrive within a few milliseconds of each other are stacked along the
batch dimension, run once, and each caller gets its own rows back. On CPU a batch of N costs
about N runs (the cores are already busy inside one run). Whether it pays depends on the model
and the load (for u2netp only at 16 concurrent requests), so the shipped models batch only with
``TRIALZONE_BATCHING=on`` (docs/performance.md).

Only for models whose every input and output has a symbolic (dynamic) first dimension:
``batchable()`` checks the session. Policy:

* a request waits at most ``max_wait`` seconds for others to join it, then its batch goes;
* a batch goes at once when it reaches ``max_size`` rows;
* at most ``max_in_flight`` batches run at a time (the model's worker count); while they do,
  new requests gather into the next batch instead of queueing one by one behind them;
* requests are only stacked with requests of the same input shapes (a 320x320 cutout never
  shares a run with a differently shaped one);
* an error in a run is raised to every caller in that batch; a caller that went away (its
  request was cancelled) is skipped.

Everything but the run itself happens on the event loop thread, so no locks are needed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from concurrent.futures import Executor
from typing import Callable

import numpy as np

Feeds = dict[str, np.ndarray]
RunBatch = Callable[[Feeds], list[np.ndarray]]


def batchable(session) -> bool:
    """True when every input and output of the ONNX Runtime session has a dynamic first dim."""
    args = list(session.get_inputs()) + list(session.get_outputs())
    return bool(args) and all(arg.shape and not isinstance(arg.shape[0], int) for arg in args)


def _shape_key(feeds: Feeds) -> tuple:
    return tuple(sorted((name, value.shape[1:], value.dtype.str) for name, value in feeds.items()))


class _Item:
    __slots__ = ("feeds", "rows", "future")

    def __init__(self, feeds: Feeds, future: asyncio.Future):
        self.feeds = feeds
        self.rows = next(iter(feeds.values())).shape[0]
        self.future = future


class Batcher:
    def __init__(self, run_batch: RunBatch, *, max_size: int = 8, max_wait: float = 0.003,
                 max_in_flight: int = 1, executor: Executor | None = None,
                 on_batch: Callable[[int], None] | None = None):
        if max_size < 1 or max_in_flight < 1 or max_wait < 0:
            raise ValueError("max_size and max_in_flight must be >= 1, max_wait >= 0")
        self.run_batch = run_batch
        self.max_size = max_size
        self.max_wait = max_wait
        self.max_in_flight = max_in_flight
        self.executor = executor
        self.on_batch = on_batch  # told each batch's row count (metrics, tests)
        self._pending: OrderedDict[tuple, list[_Item]] = OrderedDict()  # oldest shape group first
        self._due: dict[tuple, float] = {}  # when each group's oldest request has waited max_wait
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()

    async def run(self, feeds: Feeds) -> list[np.ndarray]:
        """This request's outputs, computed in a batch with whatever arrived alongside it."""
        loop = asyncio.get_running_loop()
        item = _Item(feeds, loop.create_future())
        key = _shape_key(feeds)
        group = self._pending.setdefault(key, [])
        if not group:
            self._due[key] = loop.time() + self.max_wait
        group.append(item)
        self._schedule(loop)
        return await item.future

    def _rows(self, key: tuple) -> int:
        return sum(item.rows for item in self._pending.get(key, ()))

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start every batch that may go now; arm the timer for the next one that will be due."""
        now = loop.time()
        while self._in_flight < self.max_in_flight and self._pending:
            key = next((k for k in self._pending if self._rows(k) >= self.max_size or self._due[k] <= now), None)
            if key is None:
                break
            self._start(loop, key)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending and self._in_flight < self.max_in_flight:
            due = min(self._due[k] for k in self._pending)
            self._timer = loop.call_at(due, self._schedule, loop)
        # else: a finishing batch calls _schedule, and waiting requests go then (they have waited).

    def _start(self, loop: asyncio.AbstractEventLoop, key: tuple) -> None:
        group = self._pending[key]
        batch, rows = [], 0
        while group and (not batch or rows + group[0].rows <= self.max_size):
            item = group.pop(0)
            if item.future.done():  # the caller went away
                continue
            batch.append(item)
            rows += item.rows
        if group:
            self._due[key] = loop.time()  # the rest have waited too: they go next
        else:
            del self._pending[key]
            del self._due[key]
        if not batch:
            return
        self._in_flight += 1
        task = loop.create_task(self._execute(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        try:
            names = list(batch[0].feeds)
            stacked = {n: batch[0].feeds[n] if len(batch) == 1 else np.concatenate([i.feeds[n] for i in batch])
                       for n in names}
            if self.on_batch is not None:
                self.on_batch(sum(i.rows for i in batch))
            outputs = await loop.run_in_executor(self.executor, self.run_batch, stacked)
            offset = 0
            for item in batch:
                if not item.future.done():
                    item.future.set_result([out[offset : offset + item.rows] for out in outputs])
                offset += item.rows
        except Exception as exc:  # every caller in the batch hears of it
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
        except BaseException:  # cancelled (shutdown): so are the callers waiting on this batch
            for item in batch:
                item.future.cancel()
            raise
        finally:
            self._in_flight -= 1
            self._schedule(loop)
