"""Search over the catalog: nearest products by image, filtered or not, "more like this", and text.

A product has several images and FAISS ranks images, so every image search collapses its hits to
the best image per product, fetching deeper (up to ``MAX_FETCH``) until tombstones, a filter or
products' other images no longer crowd the top-k out. A selective filter (at most
``EXACT_FILTER_LIMIT`` images) is answered by exact search over the stored embeddings of the
images it allows; a broader one inside FAISS (IDSelector) or by over-fetching, and a query still
short of k then gets the exact answer. Reads only: no lock but the vector cache's read lock.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from index.db.repository import Repository
from index.filters import SearchFilter
from index.records import SearchHit, TextHit
from index.text_query import text_words
from index.vectors.cache import VectorCache

EXACT_FILTER_LIMIT = 4096  # a filter leaving at most this many images is answered by exact search
# Deepest FAISS search when over-fetching past a filter, tombstones or several images per product
# (2048 is also the deepest a FAISS GPU index searches); a filter that still leaves a query short
# of k is answered by exact search over the ids it allows.
MAX_FETCH = 2048
EXACT_CHUNK = 4096  # embeddings read at a time by an exact search
TEXT_TIMEOUT_S = 2.0  # a text query stops after this long (the server passes its own setting)

Best = dict[int, tuple[float, int]]  # product id -> (best score, image id), best first


class Searcher:
    """Image, similar and text search over one store's repository and vector cache."""

    def __init__(self, repo: Repository, vectors: VectorCache) -> None:
        self.repo, self.vectors = repo, vectors

    def search(self, queries: np.ndarray, k: int, filter: SearchFilter | None) -> list[list[SearchHit]]:
        """queries: (M, D) float32, L2-normalised -> M lists of at most ``k`` hits, best first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.repo.dim:
            raise ValueError(f"queries must be (M, {self.repo.dim}), got {queries.shape}")
        if k < 1:
            raise ValueError("k must be >= 1")
        allowed: np.ndarray | None = None
        if filter is not None and not filter.is_empty:
            allowed = self.repo.image_ids_matching(filter)
            if len(allowed) <= EXACT_FILTER_LIMIT:
                return self._hits(self._exact_best(queries, k, allowed), k)
        best, complete = self._ann_search(queries, k, allowed)
        if allowed is not None and not complete:
            short = [i for i, b in enumerate(best) if len(b) < k]
            for i, exact in zip(short, self._exact_best(queries[short], k, allowed), strict=True):
                best[i] = exact
        return self._hits(best, k)

    def _hits(self, best: list[Best], k: int) -> list[list[SearchHit]]:
        """Per query: product id -> (score, image id), best first -> at most ``k`` hits; a product
        deleted while the search ran is left out."""
        products = self.repo.load_products(pid for b in best for pid in b)
        return [
            [
                SearchHit(products[pid], score, image_id)
                for pid, (score, image_id) in b.items()
                if pid in products
            ][:k]
            for b in best
        ]

    def _ann_search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[list[Best], bool]:
        """(per query: the best image of each product, best first; complete). Fetches deeper
        until several images per product, tombstones or a filter no longer crowd the top-k out,
        up to ``MAX_FETCH``: complete is False when a query got fewer than ``k`` products there
        though the index holds more vectors."""
        fetch = k
        while True:
            with self.vectors.reading() as index:
                total = index.ntotal
                if index.live_count == 0:
                    return [{} for _ in queries], True
                fetch = min(fetch, total, max(k, MAX_FETCH))
                inside = allowed is not None and index.supports_selector
                scores, ids = index.search(queries, fetch, allowed if inside else None)
            if allowed is not None and not inside:
                ids = np.where(np.isin(ids, allowed), ids, -1)
            owners = self.repo.image_owners(int(i) for i in ids.flat if i >= 0)
            best: list[Best] = []
            for row_scores, row_ids in zip(scores, ids, strict=True):
                per_product: Best = {}
                for score, image_id in zip(row_scores, row_ids, strict=True):
                    owner = owners.get(int(image_id))
                    if owner is not None and owner[0] not in per_product:
                        per_product[owner[0]] = (float(score), int(image_id))
                best.append(per_product)
            if fetch >= total or all(len(b) >= k for b in best):
                return best, True
            if fetch >= max(k, MAX_FETCH):
                return best, False
            fetch *= 4

    def _exact_best(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> list[Best]:
        """Brute force over the stored embeddings of ``allowed`` image ids: per query, the best
        image of each of the ``k`` best products. Reads ``EXACT_CHUNK`` embeddings at a time and
        keeps only their scores."""
        image_ids: list[int] = []
        owners: list[int] = []
        parts: list[np.ndarray] = []
        for start in range(0, len(allowed), EXACT_CHUNK):
            ids, products, vectors = self.repo.owned_embeddings(allowed[start : start + EXACT_CHUNK].tolist())
            if len(ids):
                image_ids += ids.tolist()
                owners += products.tolist()
                parts.append(queries @ vectors.T)  # (M, chunk)
        if not parts:
            return [{} for _ in queries]
        scores = np.concatenate(parts, axis=1)  # (M, A)
        results = []
        for row in scores:
            best: Best = {}
            for j in np.argsort(-row, kind="stable"):
                if owners[j] not in best:
                    best[owners[j]] = (float(row[j]), image_ids[j])
                    if len(best) == k:
                        break
            results.append(best)
        return results

    def similar(self, product_id: int, k: int, filter: SearchFilter | None) -> list[SearchHit] | None:
        """The ``k`` products nearest to any image of ``product_id`` (itself left out), from the
        stored embeddings; None when there is no such product."""
        ids, vectors = self.repo.product_embeddings(product_id)
        if not len(ids):
            return None if not self.repo.load_products([product_id]) else []
        best: dict[int, SearchHit] = {}
        for hits in self.search(vectors, k + 1, filter):  # one list per image of the product
            for hit in hits:
                pid = hit.product.id
                if pid != product_id and (pid not in best or hit.score > best[pid].score):
                    best[pid] = hit
        return sorted(best.values(), key=lambda h: -h.score)[:k]

    def image_hits(
        self, image_ids: Sequence[int], query: np.ndarray, filter: SearchFilter | None
    ) -> list[SearchHit]:
        """A hit per existing image of ``image_ids`` whose product ``filter`` admits, scored by its
        cosine with ``query`` (D,): how the local channel's candidates join a search."""
        if not len(image_ids):
            return []
        ids, product_ids, vectors = self.repo.owned_embeddings(image_ids)
        if filter is not None and not filter.is_empty:
            keep = np.isin(ids, self.repo.image_ids_matching(filter, ids.tolist()))
            ids, product_ids, vectors = ids[keep], product_ids[keep], vectors[keep]
        # (N,): a product without BLAS, whose threads would spin for more CPU than this takes
        scores = (vectors * np.asarray(query, np.float32).reshape(1, -1)).sum(1)
        products = self.repo.load_products(int(p) for p in product_ids)
        return [
            SearchHit(products[int(p)], float(s), int(i))
            for i, p, s in zip(ids, product_ids, scores, strict=True)
            if int(p) in products
        ]

    def text_search(
        self, query: str, k: int, filter: SearchFilter | None, timeout_s: float | None
    ) -> list[TextHit]:
        """Products holding every word of ``query`` (prefixes too, see ``index.text_query``),
        best bm25 first; ``TextQueryError`` for too many words, ``QueryTimeout`` past ``timeout_s``."""
        words = text_words(query)
        if not words:
            return []
        rows = self.repo.text_search(words, filter or SearchFilter(), k, timeout_s)
        products = self.repo.load_products(pid for pid, _ in rows)
        return [TextHit(products[pid], round(-rank, 6)) for pid, rank in rows if pid in products]
