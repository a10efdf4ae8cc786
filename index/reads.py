"""The read half of ``ProductStore``'s API: products, counts, the FAISS state, image search.

Reads take no lock of the store's own (each borrows a database connection, searches share the
vector cache's read lock), so they are plain delegations to the repository (``index.db``), the
vector cache (``index.vectors``), search (``index.search``) and the image files; keeping them
here leaves ``index/store.py`` the write path and its locks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.db import Repository
from index.features import FeatureTable
from index.filters import SearchFilter
from index.images import ImageFiles
from index.local.cache import LocalIndex
from index.local.compact import CompactFeatures
from index.records import Product, ProductImage, SearchHit, TextHit
from index.rerank import META_KEY as RERANK_KEY
from index.rerank import RerankOptions
from index.search import TEXT_TIMEOUT_S, Searcher
from index.vectors import VectorCache


class StoreReads:
    """Reads over the parts a ``ProductStore`` assembles (set by its constructor)."""

    repository: Repository
    vectors: VectorCache
    searcher: Searcher
    files: ImageFiles
    features: FeatureTable
    local: LocalIndex

    @property
    def index_type(self) -> str:
        return self.vectors.index_type

    def get_meta(self, key: str) -> str | None:
        return self.repository.get_meta(key)

    @property
    def rerank_options(self) -> RerankOptions:
        """The store's geometric re-ranking options (the defaults until set)."""
        raw = self.get_meta(RERANK_KEY)
        return RerankOptions.from_json(raw) if raw else RerankOptions()

    @property
    def degraded(self) -> str | None:
        """Why the store is not fully in step (searches may miss the newest writes), or None."""
        return self.vectors.degraded

    @property
    def applied_seq(self) -> int:
        """The last change FAISS holds: equal on replicas that are in step."""
        return self.vectors.applied_seq

    def image_owners(self, ids: np.ndarray) -> dict[int, tuple[int, str]]:
        """image id -> (product id, sku) for the valid ids in ``ids``."""
        return self.repository.image_owners(int(i) for i in ids.flat if i >= 0)

    def get_product(self, product_id: int) -> Product | None:
        return self.repository.load_products([product_id]).get(product_id)

    def get_by_sku(self, sku: str) -> Product | None:
        product_id = self.repository.product_id_by_sku(sku)
        return self.get_product(product_id) if product_id is not None else None

    def existing_skus(self, skus: Iterable[str]) -> set[str]:
        return self.repository.existing_skus(skus)

    def list_products(
        self, offset: int = 0, limit: int = 50, filter: SearchFilter | None = None
    ) -> list[Product]:
        """A page of products in id order, those matching ``filter`` when one is given."""
        ids = self.repository.product_ids_page(filter or SearchFilter(), offset, limit)
        loaded = self.repository.load_products(ids)
        return [loaded[i] for i in ids if i in loaded]

    def categories(self) -> list[tuple[str, int]]:
        """(category, number of products) for every category in use, by name."""
        return self.repository.categories()

    def count(self) -> int:
        return self.repository.count_products()

    def image_count(self) -> int:
        return self.repository.count_images()

    def vector_count(self) -> int:
        """Live vectors in FAISS (tombstones excluded): equals ``image_count()`` between writes."""
        return self.vectors.live_count

    def index_info(self) -> dict[str, Any]:
        return self.vectors.info()

    @property
    def index_device(self) -> str:
        return self.vectors.device

    def vector_ids(self) -> tuple[set[int], set[int]]:
        """(ids FAISS holds, tombstones): for integrity checks."""
        return self.vectors.ids()

    def iter_embeddings(self, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids (B,), embeddings (B, D)) of every stored image, in id order."""
        return self.repository.iter_embeddings(batch)

    def image_file(self, image: ProductImage) -> Path:
        """The image's file here (fetched from the database first when only it has the bytes);
        ``StoredPathError`` for a row whose path is not one this store writes."""
        return self.files.file(image)

    def local_features(self, image_ids: Sequence[int]) -> dict[int, CompactFeatures]:
        """image id -> stored compact local features, for those of ``image_ids`` that have them."""
        return self.features.load(image_ids)

    def image_hits(
        self, image_ids: Sequence[int], query: np.ndarray, filter: SearchFilter | None = None
    ) -> list[SearchHit]:
        """A hit per image of ``image_ids`` whose product ``filter`` admits, with its cosine to
        ``query`` (D,): the local channel's candidates as search hits."""
        return self.searcher.image_hits(image_ids, query, filter)

    def nearest_images(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries (M, D) -> (scores, image ids), each (M, <=k); id -1 marks an empty place."""
        return self.vectors.nearest(queries, k)

    def search(
        self, queries: np.ndarray, k: int = 10, filter: SearchFilter | None = None
    ) -> list[list[SearchHit]]:
        """Top-``k`` products per query by their best image's cosine similarity (``index.search``).

        queries: (M, D) float32, L2-normalised -> M lists of at most ``k`` hits, best first.
        ``filter`` keeps only matching products. A product deleted meanwhile is never returned.
        """
        return self.searcher.search(queries, k, filter)

    def text_search(
        self,
        query: str,
        k: int = 10,
        filter: SearchFilter | None = None,
        timeout_s: float | None = TEXT_TIMEOUT_S,
    ) -> list[TextHit]:
        """Products whose title, category or attributes contain every word of ``query`` (words of
        two letters or more match as prefixes too: "dr" finds "dress"), best bm25 first.

        Raises ``TextQueryError`` for a query of too many words (``index.text_query``), and
        ``QueryTimeout`` when it runs longer than ``timeout_s`` (None: no limit)."""
        return self.searcher.text_search(query, k, filter, timeout_s)

    def similar(
        self, product_id: int, k: int = 10, filter: SearchFilter | None = None
    ) -> list[SearchHit] | None:
        """More like this: the ``k`` products nearest to any image of ``product_id`` (itself left
        out), from the stored embeddings; None when there is no such product."""
        return self.searcher.similar(product_id, k, filter)
