"""ProductStore: the catalog's source of truth (SQLite, or PostgreSQL) and its search cache (FAISS).

A thin facade over the rooms that do the work: the repository (``index.db``, every SQL
statement), the vector cache (``index.vectors``, the FAISS lifecycle), search (``index.search``),
the image files (``index.images``) and the near-duplicate policy (``index.duplicates``); its
reads are delegations kept apart in ``index.reads``. What it keeps is the write path and its
locks: validate -> one transaction -> FAISS catch-up -> maybe snapshot, one writer at a time
(``_write_lock``, over threads and the processes sharing the store directory, and the database's
writer lock across replicas). A write is acknowledged
only after its commit, and every change to the vector set is logged in the same transaction, so
a crash afterwards loses nothing: start-up loads the FAISS snapshot and replays the newer
changes. For the same reason a FAISS update or snapshot that fails after the commit does not
fail the write: the store reports itself degraded and retries in the background. Several stores
(server replicas sharing one PostgreSQL database, or server workers sharing one SQLite store)
stay in step by calling ``sync()`` now and then.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from encoder.attributes import attributes_json
from encoder.local_features import LocalFeatures
from index.db import Repository, Transaction, open_database
from index.db.migrations import prepare
from index.db.repository import now
from index.duplicates import DuplicateCheck, DuplicatePolicy
from index.features import FeatureTable
from index.images import ImageFiles, new_images
from index.local.cache import CODEBOOK_KEY, LocalIndex, bump_generation, features_kind
from index.local.codebook import Codebook
from index.reads import StoreReads
from index.records import (
    AddResult,
    DuplicateSkuError,
    LastImageError,
    NearDuplicate,
    NewProduct,
    Product,
    TooManyImagesError,
)
from index.rerank import META_KEY as RERANK_KEY
from index.rerank import RerankOptions
from index.search import Searcher
from index.sync import ChangeFollower
from index.validation import check_features, checked_changes, checked_embeddings, checked_products
from index.vectors import RebuildReport, VectorCache, VectorOptions
from index.write_lock import StoreWriteLock

log = logging.getLogger(__name__)


class ProductStore(StoreReads):
    """Products, their images and embeddings, and a FAISS index over image ids.

    ``fingerprint``/``dim`` name the encoder whose embeddings this store holds. A new store
    records them; an existing one refuses a different fingerprint. Pass ``None`` to open an
    existing store with whatever encoder it was built with.

    ``database_url`` (``postgresql://...``) keeps the catalog in PostgreSQL instead of the SQLite
    file in ``directory``; ``directory`` then holds only this process's FAISS snapshot and a cache
    of the image files (their bytes are in the database). ``sync_interval_s`` starts a thread that
    applies other processes' writes every so many seconds (``sync()``) until ``close()``.
    """

    DB_NAME = "catalog.sqlite3"
    SNAPSHOT_NAME = "vectors.snapshot"
    IMAGES_DIR = "images"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        fingerprint: str | None = None,
        dim: int | None = None,
        use_gpu: bool = True,
        snapshot_every: int = 1000,
        float16: bool = False,
        force_tombstones: bool = False,
        gpu_shard: bool = False,
        duplicate_threshold: float = 0.9,
        duplicate_policy: DuplicatePolicy = "report",
        database_url: str | None = None,
        sync_interval_s: float | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.db = open_database(self.directory / self.DB_NAME, database_url)
        self.repository = Repository(self.db)
        self._write_lock = StoreWriteLock(self.directory)
        self.use_gpu, self.float16, self.force_tombstones = use_gpu, float16, force_tombstones
        self.gpu_shard = gpu_shard
        try:  # another encoder, a newer schema, a bad option: refused, and nothing left open
            self.fingerprint, self.dim = prepare(self.repository, fingerprint, dim)
            self.local = LocalIndex(self.repository)
            self.features = FeatureTable(self.repository, self.local)
            owners = self.repository.image_owners
            self.duplicates = DuplicateCheck(owners, duplicate_threshold, duplicate_policy)
            options = VectorOptions(use_gpu, float16, force_tombstones, gpu_shard, snapshot_every)
            snapshot = self.directory / self.SNAPSHOT_NAME
            self.vectors = VectorCache(self.repository, snapshot, options, self._write_lock)
        except BaseException:
            self.db.close()
            raise
        self.files = ImageFiles(self.directory, self.repository)
        self.searcher = Searcher(self.repository, self.vectors)
        self._follower = ChangeFollower(self.sync, sync_interval_s).start() if sync_interval_s else None

    # ------------------------------------------------------------ settings
    @property
    def snapshot_every(self) -> int:
        return self.vectors.options.snapshot_every

    @snapshot_every.setter
    def snapshot_every(self, every: int) -> None:
        self.vectors.options = replace(self.vectors.options, snapshot_every=every)

    def set_meta(self, key: str, value: str) -> None:
        """Keep a small named value with the store (e.g. calibration figures)."""
        self.repository.set_meta(key, value)

    def set_rerank_options(self, options: RerankOptions) -> None:
        self.set_meta(RERANK_KEY, options.to_json())

    def set_codebook(self, codebook: Codebook) -> None:
        """Make ``codebook`` the local index's: features of any other codebook are dropped (find
        them again with ``lookalike index features``), and the inverted file starts anew."""
        with self._write_lock:
            with self.db.transaction() as tx:
                self.repository.save_codebook(tx, codebook.name, codebook.to_bytes())
                self.repository.set_meta(CODEBOOK_KEY, codebook.name, tx)
                self.repository.delete_features_not_of(tx, features_kind(codebook))
                self.repository.delete_codebooks_except(tx, codebook.name)
                bump_generation(self.repository, tx)  # other processes build their index anew
            self.local.load()

    # ------------------------------------------------------ FAISS (index.vectors)
    def _after_commit(self, dropped_paths: Iterable[str] = ()) -> None:
        """Under ``_write_lock``, once a write is committed: FAISS catches up, and image files no
        row points at any more go. Neither may fail the write, which has happened: a failed
        catch-up makes the store degraded and is retried in the background."""
        self.vectors.after_commit()
        try:
            self.local.catch_up()
        except Exception:  # rebuilt from the committed rows at the next start or catch-up
            log.exception("the write is committed, but bringing the local index up to date failed")
            self.local.applied_seq = -1  # the next catch-up reloads
        try:
            self.files.drop_unreferenced(dropped_paths)
        except Exception:
            log.exception("the write is committed, but deleting its unused image files failed")

    def sync(self) -> int:
        """Follow the writes other processes (server replicas sharing the database) committed:
        apply their changes to this store's FAISS and local index; return how many were applied.
        One cheap query when there is nothing new."""
        applied = self.vectors.sync()
        if self.local.applied_seq != self.repository.last_seq() or self.local.stale():
            with self._write_lock:
                self.local.catch_up()
        return applied

    def snapshot(self) -> int:
        """Write the FAISS snapshot now; return the sequence number it holds."""
        return self.vectors.snapshot()

    def rebuild(
        self, index_type: str = "auto", memory_budget_bytes: int = 4 << 30, sample: int = 1000
    ) -> RebuildReport:
        """Rebuild the FAISS index from the stored embeddings (no re-embedding), maybe of a new type.

        ``auto`` chooses from the vector count and ``memory_budget_bytes``. The search-time knob is
        tuned until recall@10 vs exact search on ``sample`` stored vectors reaches the target.
        Writers wait only for the final catch-up and swap; searches never wait for the build.
        """
        report = self.vectors.rebuild(index_type, memory_budget_bytes, sample)
        with self._write_lock:
            self.local.load()  # the inverted file again from the stored features
        return report

    # ------------------------------------------------------------ writes
    def add_product(self, product: NewProduct) -> Product:
        return self.add_products([product]).products[0]

    def add_products(self, products: Sequence[NewProduct]) -> AddResult:
        """Add products in one transaction, then to FAISS; all or nothing.

        Raises ``DuplicateSkuError`` (nothing is written) when a sku exists already or repeats,
        ``NearDuplicateError`` when an image nearly equals a stored one and the policy is refuse,
        ``ValueError`` when images and embeddings do not fit this store, or attributes are not
        JSON within the limits of ``encoder.attributes`` (no NaN or infinity).
        """
        vectors = checked_products(products, self.dim)
        with self._write_lock:
            skus = [p.sku for p in products]
            duplicates = self.duplicates.find(self.vectors, skus, vectors)  # a refusal writes nothing
            if any(p.features for p in products):
                self._local_up_to_date()
            product_ids: list[int] = []
            with self.files.written([data for p in products for data in p.images]) as flat:
                ends = np.cumsum([len(p.images) for p in products]).tolist()
                files = [flat[end - len(p.images) : end] for p, end in zip(products, ends, strict=True)]
                try:
                    with self.db.transaction() as tx:
                        stamp = now()
                        for p, emb, stored in zip(products, vectors, files, strict=True):
                            attributes = attributes_json(p.attributes)
                            pid = self.repository.insert_product(
                                tx, p.sku, p.title, p.category, p.price, attributes, stamp
                            )
                            product_ids.append(pid)
                            self._insert_images(tx, pid, stored, emb, p.features)
                except self.db.integrity_errors as exc:
                    if dup := self.existing_skus(skus):
                        raise DuplicateSkuError(sorted(dup)[0]) from exc
                    raise
            self._after_commit()
        loaded = self.repository.load_products(product_ids)
        return AddResult([loaded[i] for i in product_ids], duplicates)

    def _insert_images(
        self,
        tx: Transaction,
        product_id: int,
        files: Sequence[tuple[str, str, bytes]],
        emb: np.ndarray,
        features: Sequence[LocalFeatures | None] | None,
    ) -> list[int]:
        ids = self.repository.insert_images(tx, product_id, new_images(files, emb), self.fingerprint)
        if features is not None:
            self.features.save(tx, ids, features)
        return ids

    def add_images(
        self,
        product_id: int,
        images: Sequence[bytes],
        embeddings: np.ndarray,
        replace: bool = False,
        features: Sequence[LocalFeatures | None] | None = None,
        max_images: int | None = None,
    ) -> tuple[Product, list[NearDuplicate]] | None:
        """Add images to a product (``replace``: instead of its current ones); None when it is gone.
        ``features``: their local features for the geometric re-ranking, one per image.
        ``max_images``: ``TooManyImagesError`` when the product would hold more; counted in the
        write's transaction, so concurrent adds (other threads, processes, replicas) cannot pass it."""
        emb = checked_embeddings(images, embeddings, self.dim)
        check_features(images, features)
        with self._write_lock:
            product = self.get_product(product_id)
            if product is None:
                return None
            duplicates = self.duplicates.find(self.vectors, [product.sku], [emb], exclude_product=product_id)
            if features:
                self._local_up_to_date()
            old = [i.id for i in product.images] if replace else []
            with self.files.written(images) as files, self.db.transaction() as tx:
                old_paths = self.repository.delete_images(tx, old)
                self._insert_images(tx, product_id, files, emb, features)
                if (
                    max_images is not None
                    and self.repository.count_product_images(tx, product_id) > max_images
                ):
                    raise TooManyImagesError(max_images)  # rolled back; the new files dropped
                self.repository.touch_product(tx, product_id)
            self._after_commit(old_paths)
        if replace:
            self.vectors.maybe_compact()
        updated = self.get_product(product_id)
        return (updated, duplicates) if updated else None

    def remove_image(self, product_id: int, image_id: int) -> Product | None:
        """Remove one image of a product; None when there is no such image. A product keeps at
        least one image (``LastImageError``): delete the product instead."""
        with self._write_lock:
            product = self.get_product(product_id)
            if product is None or image_id not in {i.id for i in product.images}:
                return None
            if len(product.images) == 1:
                raise LastImageError(product_id)
            with self.db.transaction() as tx:
                paths = self.repository.delete_images(tx, [image_id])
                self.repository.touch_product(tx, product_id)
            self._after_commit(paths)
        self.vectors.maybe_compact()
        return self.get_product(product_id)

    def update_product(self, product_id: int, changes: dict[str, Any]) -> Product | None:
        """Change metadata (``index.validation.UPDATABLE`` keys); None when there is no such product.
        Raises ``DuplicateSkuError`` for a sku another product has, ``ValueError`` for bad fields."""
        values = checked_changes(changes)
        with self._write_lock:
            try:
                with self.db.transaction() as tx:
                    updated = self.repository.update_product(tx, product_id, values)
            except self.db.integrity_errors as exc:
                raise DuplicateSkuError(str(changes.get("sku"))) from exc
        return self.get_product(product_id) if updated else None

    def remove_product(self, product_id: int) -> bool:
        """Delete a product with its images and vectors; False when there is no such product."""
        with self._write_lock:
            with self.db.transaction() as tx:
                paths = self.repository.delete_images(tx, self.repository.product_image_ids(tx, product_id))
                deleted = self.repository.delete_product(tx, product_id)
            if not deleted:
                return False
            self._after_commit(paths)
        self.vectors.maybe_compact()
        return True

    def save_local_features(self, features: dict[int, LocalFeatures]) -> int:
        """Keep (or replace) the local features of stored images, e.g. of a store built before
        they existed; images deleted meanwhile are skipped. Returns how many were kept."""
        if not features:
            return 0
        with self._write_lock:
            self._local_up_to_date()
            with self.db.transaction() as tx:
                ids = self.repository.existing_image_ids(tx, list(features))
                self.features.save(tx, ids, [features[i] for i in ids])
                generation = bump_generation(self.repository, tx)  # no change-log row: tell the others
            self.local.index_features(ids)
            self.local.generation = generation
        return len(ids) if self.local.codebook is not None else 0

    def _local_up_to_date(self) -> None:
        """Under the writer lock, before features are encoded: another process may have trained a
        new codebook, whose kind the rows must have."""
        if self.local.stale():
            self.local.load()

    def close(self) -> None:
        """Stop following other writers, write a final snapshot when anything changed since the
        last one, then close the database."""
        if self._follower is not None:
            self._follower.stop()
        try:
            self.vectors.close()
        finally:
            with self._write_lock:
                self.db.close()

    def __enter__(self) -> ProductStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
