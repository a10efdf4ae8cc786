"""One encoder forward and one FAISS search for concurrent requests, with the same answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from app.embedder import Embedder
from encoder import load_encoder
from index import ProductStore, SearchFilter
from tests.conftest import image_bytes


def test_concurrent_searches_share_one_faiss_call_and_get_their_own_answers(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    store = ProductStore(store_dir)
    calls: list[tuple[int, int]] = []
    search = store.search

    def counting_search(queries: np.ndarray, k: int = 10, filter: SearchFilter | None = None):
        calls.append((len(queries), k))
        return search(queries, k, filter)

    store.search = counting_search  # type: ignore[method-assign]
    embedder = Embedder(load_encoder(tiny_encoder_path), store, max_batch_size=16, max_wait_ms=200)
    seeds, ks = list(range(8)), [1, 2, 3, 4, 5, 6, 7, 8]

    async def main():
        embedder.start()
        try:
            together = await asyncio.gather(
                *(embedder.search_bytes(image_bytes(s), k) for s, k in zip(seeds, ks, strict=True)),
                embedder.search_bytes(image_bytes(9), 3, SearchFilter(category="red")),
            )
            alone = [await embedder.search_bytes(image_bytes(s), k) for s, k in zip(seeds, ks, strict=True)]
            return together, alone
        finally:
            await embedder.close()

    together, alone = asyncio.run(main())
    assert calls[0] == (8, 8), "the 8 unfiltered searches should be one FAISS call with the largest k"
    assert calls[1] == (1, 3)  # the filtered one on its own
    for (vec_t, hits_t), (vec_a, hits_a), k in zip(together[:8], alone, ks, strict=True):
        np.testing.assert_allclose(vec_t, vec_a, atol=1e-5)
        assert [h.product.id for h in hits_t] == [h.product.id for h in hits_a] and len(hits_t) == k
    assert {h.product.category for h in together[8][1]} <= {"red"}
    store.close()
