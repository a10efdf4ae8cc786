import asyncio
import threading

import pytest

from app.batching import MicroBatcher, Overloaded


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_get_their_own_results() -> None:
    seen: list[int] = []

    def double(items: list[int]) -> list[int]:
        seen.append(len(items))
        return [2 * x for x in items]

    async def main() -> list[int]:
        batcher = MicroBatcher(double, max_batch_size=8, max_wait_ms=50)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(i) for i in range(20)))
        finally:
            await batcher.close()

    assert run(main()) == [2 * i for i in range(20)]
    assert sum(seen) == 20 and max(seen) == 8 and len(seen) < 20


def test_a_failing_batch_fails_every_waiter_and_the_batcher_goes_on() -> None:
    def flaky(items: list[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("boom")
        return items

    async def main():
        batcher = MicroBatcher(flaky, max_batch_size=4, max_wait_ms=20)
        batcher.start()
        try:
            results = await asyncio.gather(*(batcher.submit(i) for i in (11, 12, 13)), return_exceptions=True)
            after = await batcher.submit(5)
            return results, after
        finally:
            await batcher.close()

    results, after = run(main())
    assert all(isinstance(r, RuntimeError) for r in results) and after == 5


def test_wrong_number_of_results_is_an_error_not_a_mixup() -> None:
    async def main():
        batcher = MicroBatcher(lambda items: items[:-1], max_batch_size=4, max_wait_ms=20)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
        finally:
            await batcher.close()

    assert all(isinstance(r, RuntimeError) and "results" in str(r) for r in run(main()))


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(lambda x: x, max_batch_size=0)
    with pytest.raises(RuntimeError, match="start"):
        run(MicroBatcher(lambda x: x).submit(1))


def test_a_full_queue_refuses_at_once_and_the_queued_items_still_get_answers() -> None:
    release = threading.Event()
    computed: list[int] = []

    def slow(items: list[int]) -> list[int]:
        release.wait(5)
        computed.extend(items)
        return items

    async def main() -> tuple[int, list[int]]:
        batcher = MicroBatcher(slow, max_batch_size=1, max_wait_ms=0, max_queue=2)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(1))  # taken by the worker, blocks in slow()
            await asyncio.sleep(0.05)
            waiting = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]  # fill the queue
            await asyncio.sleep(0)
            assert batcher.full and batcher.queue_depth == 2
            with pytest.raises(Overloaded, match="waiting"):
                await batcher.submit(4)
            release.set()
            return await first, list(await asyncio.gather(*waiting))
        finally:
            release.set()
            await batcher.close()

    assert run(main()) == (1, [2, 3])
    assert computed == [1, 2, 3]


def test_an_item_whose_caller_timed_out_is_not_computed() -> None:
    release = threading.Event()
    computed: list[int] = []

    def slow(items: list[int]) -> list[int]:
        release.wait(5)
        computed.extend(items)
        return items

    async def main():
        batcher = MicroBatcher(slow, max_batch_size=1, max_wait_ms=0)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(1))
            await asyncio.sleep(0.05)
            with pytest.raises(Overloaded, match="within"):
                await batcher.submit(2, timeout_s=0.05)  # waits behind the blocked batch
            release.set()
            assert await first == 1
            assert await batcher.submit(3) == 3
        finally:
            release.set()
            await batcher.close()

    run(main())
    assert computed == [1, 3]


def test_an_item_that_fails_alone_fails_only_its_own_waiter() -> None:
    sizes: list[int] = []

    def picky(items: list[int]) -> list[int | Exception]:
        sizes.append(len(items))
        return [ValueError(f"{x} is odd") if x % 2 else x for x in items]

    async def main() -> list[asyncio.Task[int]]:
        batcher = MicroBatcher(picky, max_batch_size=4, max_wait_ms=30_000)  # closes when 4 are in
        batcher.start()
        try:
            tasks = [asyncio.ensure_future(batcher.submit(i)) for i in range(4)]
            await asyncio.wait(tasks)
            return tasks
        finally:
            await batcher.close()

    tasks = run(main())
    assert sizes == [4]
    assert tasks[0].result() == 0 and tasks[2].result() == 2
    for i in (1, 3):
        with pytest.raises(ValueError, match="odd"):
            tasks[i].result()
