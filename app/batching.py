"""The micro-batcher: concurrent requests share one forward pass.

Each ``submit`` puts (item, future) on a queue. One worker task takes the first waiting item,
waits at most ``max_wait_ms`` for more (up to ``max_batch_size``), runs ``fn`` on the batch in
a worker thread (off the event loop), and hands every waiter its own result. ``fn`` may put an
exception in place of one item's result: that waiter alone gets it, so one bad request does not
fail the strangers batched with it. When ``fn`` itself raises (the shared work failed) or returns
the wrong number of results, every waiter gets the exception.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _shut_down(items: list[Any]) -> NoReturn:
    raise RuntimeError("the batcher was shut down")


class Overloaded(Exception):
    """The queue is full, or an item waited longer than its timeout: come back later."""


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    largest: int = 0


class MicroBatcher(Generic[T, R]):
    """``await submit(item)`` -> ``fn([... item ...])[i]``, batched across concurrent callers; raised
    when that is an exception."""

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R | Exception]],
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
        max_queue: int = 0,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.stats = BatchStats()
        self.on_batch = on_batch  # told the size of every batch, e.g. for a histogram
        self.max_queue = max_queue  # 0: unbounded
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        # One thread: forwards run one after another, never two models' worth of memory at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")

    def start(self) -> None:
        """Start the worker on the running event loop (called from the app's lifespan)."""
        if self._worker is None:
            self._queue = asyncio.Queue(maxsize=self.max_queue)
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._queue is not None:  # nobody will serve these any more
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(RuntimeError("the batcher was shut down"))
        self._executor.shutdown(wait=True)
        self.fn = _shut_down  # let go of the model: ``fn`` is often a bound method of its owner (a cycle)

    @property
    def queue_depth(self) -> int:
        """Items waiting for a batch (not those being computed)."""
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def full(self) -> bool:
        return self._queue is not None and self._queue.full()

    async def submit(self, item: T, timeout_s: float | None = None) -> R:
        """``fn``'s result for ``item``; ``Overloaded`` at once when the queue is full, or when the
        result takes longer than ``timeout_s`` (the item is then dropped from its batch if it has
        not started)."""
        if self._queue is None or self._worker is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, future))
        except asyncio.QueueFull:
            raise Overloaded(f"{self._queue.qsize()} requests are waiting already") from None
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            raise Overloaded(f"no answer within {timeout_s:g} s") from None

    async def _collect(self) -> list[tuple[T, asyncio.Future[R]]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [(item, fut) for item, fut in batch if not fut.done()]  # skip cancelled callers
            if not live:
                continue
            self.stats.batches += 1
            self.stats.items += len(live)
            self.stats.largest = max(self.stats.largest, len(live))
            if self.on_batch is not None:
                self.on_batch(len(live))
            try:
                results = await loop.run_in_executor(self._executor, self.fn, [item for item, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(
                        f"batch function returned {len(results)} results for {len(live)} inputs"
                    )
            except Exception as exc:  # every waiter learns of the failure
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(live, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, Exception):  # this item's own failure
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
