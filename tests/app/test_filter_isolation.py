"""One hostile filtered search must not fail the strangers batched with it.

Filtered searches run inside the micro-batcher's shared function: a filter that made the store
raise (SQLite's "expression tree is too large" for 1,200 attribute keys, a RecursionError for
deeply nested JSON) used to fail every request of its batch with 500.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import httpx
import pytest

from app.embedder import Embedder
from encoder import load_encoder
from index import ProductStore, SearchFilter
from tests.conftest import image_bytes
from tests.server import running_server

HOSTILE_FILTERS = {
    "1,200 keys": json.dumps({f"k{i}": i for i in range(1200)}),
    "200,000 brackets": "[" * 200_000,
    "200,000 nested objects": '{"a":' * 200_000,
    "NaN": '{"size": NaN}',
    "a 100 kB value": json.dumps({"colour": "x" * 100_000}),
}
ORDINARY = 6


async def _mixed_batch(base: str) -> tuple[dict[str, httpx.Response], list[httpx.Response]]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

        async def search(seed: int, attributes: str | None) -> httpx.Response:
            data = {"k": "3"} if attributes is None else {"k": "3", "attributes": attributes}
            photo = {"image": ("q.jpg", image_bytes(seed), "image/jpeg")}
            return await client.post("/search", files=photo, data=data)

        answers = await asyncio.gather(
            *(search(i, raw) for i, raw in enumerate(HOSTILE_FILTERS.values())),
            *(search(i, None if i % 2 else '{"colour": "red"}') for i in range(ORDINARY)),
        )
    return dict(zip(HOSTILE_FILTERS, answers[: len(HOSTILE_FILTERS)], strict=True)), list(
        answers[len(HOSTILE_FILTERS) :]
    )


def test_hostile_filters_are_422_and_the_searches_sent_with_them_200(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    # a long batching window: every request sent together shares one batch
    with running_server(
        tiny_encoder_path, store_dir, LOOKALIKE_MAX_WAIT_MS="1000", LOOKALIKE_MAX_BATCH_SIZE=str(ORDINARY)
    ) as (base, _):
        hostile, ordinary = asyncio.run(_mixed_batch(base))
        metrics = httpx.get(f"{base}/metrics").text
    for name, r in hostile.items():
        assert r.status_code == 422, f"{name}: {r.status_code} {r.text[:300]}"
        error = r.json()["error"]
        assert error["code"] == "invalid_filter" and error["message"], name
        assert len(error["message"]) < 300, f"{name}: the message echoes the input"
    assert [r.status_code for r in ordinary] == [200] * ORDINARY, [r.text[:200] for r in ordinary]
    assert all(len(r.json()["results"]) <= 3 for r in ordinary)
    encoded = [line for line in metrics.splitlines() if line.startswith("lookalike_batch_size_sum")]
    assert float(encoded[0].split()[-1]) == ORDINARY  # the hostile ones never reached the encoder


def test_a_failing_filtered_search_fails_only_its_own_request(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    """Whatever a store search raises (a database error, a filter the checks let through) goes to
    the request that asked for it; the other searches of its batch are answered."""
    encoder = load_encoder(tiny_encoder_path)
    store = _open_store(store_dir, encoder)
    real_search = store.search
    batch_sizes: list[int] = []

    def search(vectors, k, filter=None):  # type: ignore[no-untyped-def]
        if filter is not None and filter.category == "explode":
            raise RuntimeError("the database went away")
        return real_search(vectors, k, filter)

    store.search = search  # type: ignore[method-assign]
    # the batch closes when all four are in (the long wait only guards a slow machine)
    embedder = Embedder(encoder, store, max_batch_size=4, max_wait_ms=30_000, on_batch=batch_sizes.append)

    filters = [
        SearchFilter(category="explode"),
        SearchFilter(category="red"),
        None,
        SearchFilter(min_price=0),
    ]
    results = _search_together(embedder, store, filters)
    assert batch_sizes == [4]  # one batch: the failure could have reached them all
    assert isinstance(results[0], RuntimeError) and "went away" in str(results[0])
    for r in results[1:]:
        assert isinstance(r, tuple), r
    assert len(results[2][1]) == 3  # type: ignore[index]


def test_a_failing_forward_still_fails_every_waiter(tiny_encoder_path: Path, store_dir: Path) -> None:
    encoder = load_encoder(tiny_encoder_path)
    store = _open_store(store_dir, encoder)
    calls = threading.Event()

    def broken(pixels):  # type: ignore[no-untyped-def]
        calls.set()
        raise RuntimeError("CUDA error: out of memory")

    embedder = Embedder(encoder, store, max_batch_size=3, max_wait_ms=30_000)
    embedder.encoder.embed = broken  # type: ignore[method-assign]

    results = _search_together(embedder, store, [None, None, None])
    assert calls.is_set()
    assert all(isinstance(r, RuntimeError) and "out of memory" in str(r) for r in results)


def _search_together(
    embedder: Embedder, store: ProductStore, filters: list[SearchFilter | None]
) -> list[object]:
    """Sends one search of k = 3 per filter at once (photo i for the i-th); each answer or
    exception, in order. Closes the embedder and the store."""

    async def main() -> list[object]:
        embedder.start()
        try:
            searches = (embedder.search_bytes(image_bytes(i), 3, f) for i, f in enumerate(filters))
            return await asyncio.gather(*searches, return_exceptions=True)
        finally:
            await embedder.close()

    try:
        return asyncio.run(main())
    finally:
        store.close()


def _open_store(store_dir: Path, encoder) -> ProductStore:  # type: ignore[no-untyped-def]
    from encoder import encoder_fingerprint

    return ProductStore(store_dir, encoder_fingerprint(encoder), encoder.config.embed_dim)


@pytest.fixture(autouse=True)
def _quiet_torch() -> None:
    import torch

    torch.set_num_threads(1)
