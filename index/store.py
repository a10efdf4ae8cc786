"""ProductStore: the catalog's source of truth (SQLite, or PostgreSQL) and its search cache (FAISS).

Lock discipline: one writer at a time (``_write_lock``, over threads and the processes sharing the
store directory, and the database's writer lock across replicas) does its commit, then the FAISS
update; searches share the FAISS index under a readers-writer lock; SQL reads each borrow a
connection of their own. A write is acknowledged only after its commit, and every change to the
vector set is logged in ``changes`` in the same transaction, so a crash afterwards loses nothing:
start-up loads the FAISS snapshot and replays the newer changes. For the same reason a FAISS
update or snapshot that fails after the commit does not fail the write: the store reports itself
degraded and retries in the background. FAISS applies changes from the log only, so several
stores (server replicas sharing one PostgreSQL database, or server workers sharing one SQLite
store) stay in step by calling ``sync()`` now and then.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from encoder import sniff_format
from encoder.atomic import atomic_write
from encoder.local_features import LocalFeatures
from index import ann
from index.attributes import attributes_json
from index.changes import ChangeBatch, decode_embeddings, read_changes
from index.db import Queries, Transaction, open_database
from index.features import FeatureTable
from index.filters import SearchFilter
from index.images import StoredPathError, image_relpath, resolve_image_path
from index.records import (
    AddResult,
    DuplicateSkuError,
    EncoderMismatchError,
    LastImageError,
    NearDuplicate,
    NearDuplicateError,
    NewProduct,
    Product,
    ProductImage,
    SearchHit,
    TextHit,
    TooManyImagesError,
)
from index.rerank import META_KEY as RERANK_KEY
from index.rerank import RerankOptions
from index.retry import BackgroundRetry
from index.rwlock import ReadWriteLock
from index.sync import ChangeFollower
from index.text_query import text_words
from index.vectors import SnapshotError, VectorIndex, read_snapshot, write_snapshot
from index.write_lock import StoreWriteLock

log = logging.getLogger(__name__)
SCHEMA_VERSION = "2"  # 2: image_features (local features for the geometric re-ranking)
DuplicatePolicy = Literal["off", "report", "refuse"]
EXACT_FILTER_LIMIT = 4096  # a filter leaving at most this many images is answered by exact search
# Deepest FAISS search when over-fetching past a filter, tombstones or several images per product
# (2048 is also the deepest a FAISS GPU index searches); a filter that still leaves a query short
# of k is answered by exact search over the ids it allows.
MAX_FETCH = 2048
EXACT_CHUNK = 4096  # embeddings read at a time by an exact search
TEXT_TIMEOUT_S = 2.0  # a text query stops after this long (the server passes its own setting)
UPDATABLE = ("sku", "title", "category", "price", "attributes")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _id_map(index: Any) -> set[int]:
    """The ids an ``IndexIDMap2`` holds."""
    return set(faiss.vector_to_array(index.id_map).tolist())


@dataclass(frozen=True)
class RebuildReport:
    index_type: str
    vectors: int
    seconds: float
    tuning: ann.Tuning  # the search knobs chosen and recall@10 vs exact on a sample of stored vectors

    def summary(self) -> str:
        knobs = ", ".join(f"{k}={v}" for k, v in self.tuning.knobs.items()) or "exact"
        return (
            f"built {self.index_type} over {self.vectors:,} vectors in {self.seconds:.1f} s; recall@10 vs "
            f"exact search on a sample of stored vectors: {self.tuning.recall:.3f} ({knobs})"
        )


class ProductStore:
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
        self._write_lock = StoreWriteLock(self.directory)
        self._vectors_lock = ReadWriteLock()
        self.fingerprint, self.dim = self._check_encoder(fingerprint, dim)
        self._index_text_once()
        self._migrate()
        self.features = FeatureTable(self.db)
        self.use_gpu, self.float16, self.force_tombstones = use_gpu, float16, force_tombstones
        self.gpu_shard = gpu_shard
        self.snapshot_every = snapshot_every
        if duplicate_policy not in ("off", "report", "refuse"):
            raise ValueError(f"duplicate_policy must be off, report or refuse, not {duplicate_policy!r}")
        self.duplicate_threshold, self.duplicate_policy = duplicate_threshold, duplicate_policy
        with self._write_lock:  # not one another process sharing the directory is writing now
            for stale in self.directory.glob(f".{self.SNAPSHOT_NAME}.*.tmp"):
                stale.unlink(missing_ok=True)  # a snapshot write interrupted by a crash
        self._vectors, self._snapshot_seq, self._applied_seq = self._load_vectors()
        self._stale = False  # a catch-up failed midway: FAISS may hold part of a batch until reloaded
        self._snapshot_owed = False  # a snapshot write failed: the next catch-up writes one
        self._degraded: str | None = None
        self._retry: BackgroundRetry | None = None  # made on the first failure: it refers back to the store
        self._closing = False
        self._follower = ChangeFollower(self.sync, sync_interval_s).start() if sync_interval_s else None

    # ----------------------------------------------------------------- set-up
    def _check_encoder(self, fingerprint: str | None, dim: int | None) -> tuple[str, int]:
        meta = self._meta()
        if not meta:
            if fingerprint is None or dim is None:
                raise ValueError(
                    f"{self.db.location} holds no store yet; give the encoder fingerprint and dim"
                )
            with self.db.transaction() as db:
                if db.execute("SELECT 1 FROM meta").fetchall():  # another process made it meanwhile
                    return self._check_encoder(fingerprint, dim)
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("schema_version", SCHEMA_VERSION),
                        ("fingerprint", fingerprint),
                        ("dim", str(dim)),
                        ("index_type", "Flat"),
                    ],
                )
            return fingerprint, dim
        if fingerprint is not None and fingerprint != meta["fingerprint"]:
            raise EncoderMismatchError(
                f"{self.db.location} was built with encoder {meta['fingerprint'][:12]}, not "
                f"{fingerprint[:12]}; re-embed the catalog into a new store with "
                "`lookalike build --catalog ... --encoder NEW.pt --store NEW_DIR` and switch to it"
            )
        if dim is not None and dim != int(meta["dim"]):
            raise EncoderMismatchError(f"store holds {meta['dim']}-d embeddings, encoder makes {dim}-d")
        return meta["fingerprint"], int(meta["dim"])

    def _index_text_once(self) -> None:
        """A store made before text search existed gets its text index filled once."""
        if "text_index" not in self._meta():
            with self.db.transaction() as db:
                self.db.rebuild_text_index(db)
                db.execute("INSERT INTO meta VALUES ('text_index', '1') ON CONFLICT (key) DO NOTHING")

    def _migrate(self) -> None:
        """Bring an older store to ``SCHEMA_VERSION``. Version 2 added ``image_features``, which
        opening the database creates (``IF NOT EXISTS``); its images have no features until
        ``lookalike index features`` computes them, and are not re-ranked meanwhile."""
        if int(self._meta().get("schema_version", "1")) < int(SCHEMA_VERSION):
            log.info("store %s: schema version 2 (local features for re-ranking)", self.db.location)
            self.set_meta("schema_version", SCHEMA_VERSION)

    def _meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.db.query("SELECT key, value FROM meta")}

    @property
    def index_type(self) -> str:
        return self._meta().get("index_type", "Flat")

    def _set_index_type(self, index_type: str) -> None:
        self.set_meta("index_type", index_type)

    def set_meta(self, key: str, value: str) -> None:
        """Keep a small named value with the store (e.g. calibration figures)."""
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def get_meta(self, key: str) -> str | None:
        return self._meta().get(key)

    @property
    def rerank_options(self) -> RerankOptions:
        """The store's geometric re-ranking options (the defaults until set)."""
        raw = self.get_meta(RERANK_KEY)
        return RerankOptions.from_json(raw) if raw else RerankOptions()

    def set_rerank_options(self, options: RerankOptions) -> None:
        self.set_meta(RERANK_KEY, options.to_json())

    def _last_seq(self, read: Queries | None = None) -> int:
        return int((read or self.db).scalar("SELECT COALESCE(MAX(seq), 0) FROM changes"))

    def _wrap(self, cpu_index: faiss.Index, index_type: str, tombstones: Iterable[int] = ()) -> VectorIndex:
        return VectorIndex(
            cpu_index,
            index_type,
            tombstones,
            self.use_gpu,
            self.float16,
            self.force_tombstones,
            self.gpu_shard,
        )

    def _load_vectors(self) -> tuple[VectorIndex, int, int]:
        """(index, seq of the snapshot it was loaded from or 0, seq of the last change it holds):
        the snapshot plus the newer changes; a rebuild from the database when it is unusable or wrong."""
        path = self.directory / self.SNAPSHOT_NAME
        index_type = self.index_type
        if path.exists():
            try:
                cpu, tombstones, seq = read_snapshot(path)
                vectors = self._wrap(cpu, index_type, tombstones)
                with self.db.snapshot() as read:
                    if cpu.d != self.dim or seq > self._last_seq(read):
                        raise SnapshotError(f"{path} does not belong to this store")
                    changes = read_changes(read, seq, self.dim)
                    changes.apply_to(vectors)
                    if self._holds_exactly_the_stored_images(vectors, read):
                        return vectors, seq, changes.last_seq
                log.warning("FAISS snapshot and the database disagree on the image ids: rebuilding")
            except SnapshotError as exc:
                log.warning("ignoring FAISS snapshot, rebuilding from the database: %s", exc)
        ids, vectors_np, seq = self._read_all_embeddings()
        try:
            cpu = self._new_index(index_type, ids, vectors_np)
        except ValueError as exc:  # e.g. too few vectors left to train this IVF
            log.warning("cannot rebuild a %s index (%s): using Flat", index_type, exc)
            cpu = self._new_index("Flat", ids, vectors_np)
            index_type = "Flat"
            self._set_index_type(index_type)
        vectors = self._wrap(cpu, index_type)
        with self.db.snapshot() as read:
            changes = read_changes(read, seq, self.dim)
        changes.apply_to(vectors)
        return vectors, 0, changes.last_seq

    def _holds_exactly_the_stored_images(self, vectors: VectorIndex, read: Queries) -> bool:
        held = _id_map(vectors.cpu_index()) - vectors.tombstones
        return held == {r["id"] for r in read.query("SELECT id FROM images")}

    def _decode(self, rows: Sequence[Any]) -> np.ndarray:
        """The (N, D) embeddings of ``rows`` (with ``id`` and ``embedding`` columns)."""
        return decode_embeddings([r["id"] for r in rows], [bytes(r["embedding"]) for r in rows], self.dim)

    def _read_all_embeddings(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(ids (N,), embeddings (N, D), seq) read in one snapshot on a separate connection, so
        writers and searches go on meanwhile."""
        with self.db.snapshot(own_connection=True) as read:
            seq = self._last_seq(read)
            rows = read.query("SELECT id, embedding FROM images ORDER BY id")
        ids = [r["id"] for r in rows]
        blobs = [bytes(r["embedding"]) for r in rows]
        return np.array(ids, dtype=np.int64), decode_embeddings(ids, blobs, self.dim), seq

    def _new_index(self, index_type: str, ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
        index = ann.new_index(index_type, self.dim)
        ann.train(index, vectors)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors), ids)
        return index

    # ----------------------------------------------------------------- helpers
    def _load_products(self, product_ids: Iterable[int]) -> dict[int, Product]:
        ids = sorted(set(product_ids))
        images: dict[int, list[ProductImage]] = {i: [] for i in ids}
        for r in self.db.rows_in(
            "SELECT id, product_id, content_hash, path FROM images WHERE product_id IN ({}) ORDER BY id", ids
        ):
            images[r["product_id"]].append(ProductImage(r["id"], r["content_hash"], r["path"]))
        return {
            r["id"]: Product(
                r["id"],
                r["sku"],
                r["title"],
                r["category"],
                r["price"],
                json.loads(r["attributes"]),
                r["created_at"],
                r["updated_at"],
                tuple(images[r["id"]]),
            )
            for r in self.db.rows_in(
                "SELECT id, sku, title, category, price, attributes, created_at, updated_at FROM products"
                " WHERE id IN ({})",
                ids,
            )
        }

    def _write_image_file(self, data: bytes) -> tuple[str, str, bytes]:
        """Store bytes under their sha256 (never a client's name); return (hash, relative path, bytes)."""
        digest = hashlib.sha256(data).hexdigest()
        rel = image_relpath(digest, sniff_format(data))
        target = resolve_image_path(self.directory, rel, digest)
        if not target.exists():  # same bytes, same name: a file already there is this one
            with atomic_write(target) as f:
                f.write(data)
        return digest, rel, data

    @contextmanager
    def _image_files(self, blobs: Sequence[bytes]) -> Iterator[list[tuple[str, str, bytes]]]:
        """Write the files of a write in progress; when it fails, delete those no row points at.
        The caller holds ``_write_lock``, so no other write can start or stop using these files."""
        files = [self._write_image_file(data) for data in blobs]
        try:
            yield files
        except BaseException:
            self._drop_unreferenced_files(rel for _, rel, _ in files)
            raise

    def _drop_unreferenced_files(self, paths: Iterable[str]) -> None:
        """Delete image files no image row points at any more (files are shared by content).
        Called under ``_write_lock``: a concurrent write could otherwise reuse a file being dropped.
        (With PostgreSQL the files here are a cache of the bytes in the database: one another
        replica drops stays here, and is still right, being named by its content.)"""
        for rel in set(paths):
            try:
                target = resolve_image_path(self.directory, rel)
            except StoredPathError as exc:  # the row is gone; what it pointed at is not ours to delete
                log.error("image file not deleted: %s", exc)
                continue
            if not self.db.scalar("SELECT 1 FROM images WHERE path = ? LIMIT 1", (rel,)):
                target.unlink(missing_ok=True)

    @staticmethod
    def _check_features(images: Sequence[bytes], features: Sequence[LocalFeatures | None] | None) -> None:
        if features is not None and len(features) != len(images):
            raise ValueError(f"expected local features for {len(images)} images, got {len(features)}")

    def _checked_embeddings(self, images: Sequence[bytes], embeddings: np.ndarray | None) -> np.ndarray:
        if not images:
            raise ValueError("at least one image is needed")
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.shape != (len(images), self.dim):
            raise ValueError(f"expected embeddings of shape ({len(images)}, {self.dim}), got {emb.shape}")
        norms = np.linalg.norm(emb, axis=1)
        if not np.all(np.isfinite(emb)) or not np.allclose(norms, 1.0, atol=1e-3):
            raise ValueError("embeddings must be finite and L2-normalised")
        return emb

    def _insert_images(
        self,
        db: Transaction,
        product_id: int,
        files: Sequence[tuple[str, str, bytes]],
        emb: np.ndarray,
        features: Sequence[LocalFeatures | None] | None = None,
    ) -> list[int]:
        now, ids = _now(), []
        for vector, (digest, rel, data) in zip(emb, files, strict=True):
            self.db.save_image_bytes(db, rel, data)
            cur = db.execute(
                "INSERT INTO images (product_id, content_hash, path, embedding, fingerprint, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (product_id, digest, rel, vector.tobytes(), self.fingerprint, now),
            )
            ids.append(int(cur.fetchall()[0][0]))
        db.executemany("INSERT INTO changes (op, image_id) VALUES ('add', ?)", [(i,) for i in ids])
        if features is not None:
            self.features.save(db, ids, features)
        return ids

    def _delete_images(self, db: Transaction, image_ids: Sequence[int]) -> list[str]:
        """Delete image rows (logging their removal); return their file paths."""
        paths = [
            r["path"]
            for r in db.execute(
                f"SELECT path FROM images WHERE id IN ({','.join('?' * len(image_ids))})", list(image_ids)
            )
        ]
        db.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in image_ids])
        db.executemany("INSERT INTO changes (op, image_id) VALUES ('remove', ?)", [(i,) for i in image_ids])
        self.db.drop_unused_image_bytes(db, paths)
        return paths

    def _catch_up(self) -> ChangeBatch:
        """Under ``_write_lock`` (after a commit, or to follow other writers): apply to FAISS every
        committed change newer than the last one applied, this store's and other processes' alike;
        then maybe write a snapshot (always, when an earlier one failed). Success ends a
        degraded state."""
        if self._stale:
            self._reload_vectors()
        with self.db.snapshot() as read:
            changes = read_changes(read, self._applied_seq, self.dim)
        with self._vectors_lock.write():
            try:
                changes.apply_to(self._vectors)
            except BaseException:
                self._stale = True  # part of the batch may be in FAISS: applying it again would double it
                raise
        self._applied_seq = changes.last_seq
        if self._snapshot_owed or self._applied_seq - self._snapshot_seq >= self.snapshot_every:
            self._write_snapshot()
        if self._degraded is not None:
            log.info("the vector index has caught up with the catalog again")
            self._degraded = None
        return changes

    def _reload_vectors(self) -> None:
        """Under ``_write_lock``, after a catch-up failed midway: FAISS anew from the snapshot and
        the change log (or the stored embeddings), so no vector is missing or held twice."""
        fresh, snapshot_seq, applied_seq = self._load_vectors()
        with self._vectors_lock.write():
            self._vectors = fresh
        self._snapshot_seq, self._applied_seq = snapshot_seq, applied_seq
        self._stale = False

    def _after_commit(self, dropped_paths: Iterable[str] = ()) -> None:
        """Under ``_write_lock``, once a write is committed: FAISS catches up, and image files no
        row points at any more go. Neither may fail the write, which has happened: a failed
        catch-up is logged, makes the store degraded and is retried in the background."""
        try:
            self._catch_up()
        except Exception as exc:
            self._catch_up_failed(exc)
        try:
            self._drop_unreferenced_files(dropped_paths)
        except Exception:
            log.exception("the write is committed, but deleting its unused image files failed")

    def _catch_up_failed(self, exc: Exception) -> None:
        log.error(
            "the write is committed, but bringing the vector index up to date failed; retrying in the "
            "background",
            exc_info=exc,
        )
        self._degraded = "the vector index is catching up with committed writes (retrying)"
        if self._closing:
            return  # the next start replays the change log
        if self._retry is None:
            self._retry = BackgroundRetry(self._recover, "lookalike-catch-up")
        self._retry.trigger()

    def _recover(self) -> None:
        """The background retry: one more catch-up, unless another one succeeded meanwhile."""
        with self._write_lock:
            if self._degraded is not None:
                self._catch_up()

    @property
    def degraded(self) -> str | None:
        """Why the store is not fully in step (searches may miss the newest writes), or None."""
        return self._degraded

    def sync(self) -> int:
        """Follow the writes other processes (server replicas sharing the database) committed:
        apply their changes to this store's FAISS; return how many were applied. One cheap query
        when there is nothing new."""
        if self._last_seq() == self._applied_seq:
            return 0
        with self._write_lock:
            changes = self._catch_up()
        if changes.removed:
            self._maybe_compact()
        return len(changes)

    @property
    def applied_seq(self) -> int:
        """The last change FAISS holds: equal on replicas that are in step."""
        return self._applied_seq

    # ----------------------------------------------------------------- writes
    def add_product(self, product: NewProduct) -> Product:
        return self.add_products([product]).products[0]

    def add_products(self, products: Sequence[NewProduct]) -> AddResult:
        """Add products in one SQLite transaction, then to FAISS; all or nothing.

        Raises ``DuplicateSkuError`` (nothing is written) when a sku exists already or repeats,
        ``NearDuplicateError`` when an image nearly equals a stored one and the policy is refuse,
        ``ValueError`` when images and embeddings do not fit this store, or attributes are not
        JSON within the limits of ``index.attributes`` (no NaN or infinity).
        """
        for p in products:
            if not p.sku or not p.title:
                raise ValueError("a product needs a non-empty sku and title")
            attributes_json(p.attributes)  # InvalidAttributes, a ValueError: before anything is written
        vectors = [self._checked_embeddings(p.images, p.embeddings) for p in products]
        for p in products:
            self._check_features(p.images, p.features)
        skus = [p.sku for p in products]
        if len(set(skus)) != len(skus):
            raise DuplicateSkuError(next(s for s in skus if skus.count(s) > 1))
        with self._write_lock:
            duplicates = self._near_duplicates(skus, vectors)  # a refusal writes nothing at all
            product_ids: list[int] = []
            with self._image_files([data for p in products for data in p.images]) as flat:
                ends = np.cumsum([len(p.images) for p in products]).tolist()
                files = [flat[end - len(p.images) : end] for p, end in zip(products, ends, strict=True)]
                self._insert_products(products, vectors, files, product_ids)
            self._after_commit()
        loaded = self._load_products(product_ids)
        return AddResult([loaded[i] for i in product_ids], duplicates)

    def _insert_products(
        self,
        products: Sequence[NewProduct],
        vectors: Sequence[np.ndarray],
        files: Sequence[Sequence[tuple[str, str, bytes]]],
        product_ids: list[int],
    ) -> None:
        """One transaction inserting ``products``; fills ``product_ids``."""
        try:
            with self.db.transaction() as db:
                now = _now()
                for p, emb, stored in zip(products, vectors, files, strict=True):
                    cur = db.execute(
                        "INSERT INTO products (sku, title, category, price, attributes, created_at,"
                        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (p.sku, p.title, p.category, p.price, attributes_json(p.attributes), now, now),
                    )
                    product_ids.append(int(cur.fetchall()[0][0]))
                    self._insert_images(db, product_ids[-1], stored, emb, p.features)
        except self.db.integrity_errors as exc:
            dup = self.existing_skus(p.sku for p in products)
            if dup:
                raise DuplicateSkuError(sorted(dup)[0]) from exc
            raise

    def _near_duplicates(
        self, skus: Sequence[str], vectors: Sequence[np.ndarray], exclude_product: int | None = None
    ) -> list[NearDuplicate]:
        """Images of the new products whose cosine to a stored image (of another product), or to an
        earlier new product's image, reaches the threshold. Raises under the refuse policy."""
        if self.duplicate_policy == "off" or not vectors:
            return []
        found: list[NearDuplicate] = []
        stacked = np.concatenate(vectors)  # (M, D)
        owner = np.repeat(np.arange(len(vectors)), [len(v) for v in vectors])
        with self._vectors_lock.read():
            scores, ids = self._vectors.search(stacked, 8) if self._vectors.live_count else (None, None)
        if ids is not None and scores is not None:
            owners = self.image_owners(ids)
            for row, (row_scores, row_ids) in enumerate(zip(scores, ids, strict=True)):
                for score, image_id in zip(row_scores, row_ids, strict=True):
                    pid_sku = owners.get(int(image_id))
                    if score >= self.duplicate_threshold and pid_sku and pid_sku[0] != exclude_product:
                        found.append(self._near(skus, vectors, owner, row, pid_sku, int(image_id), score))
                        break
        within = stacked @ stacked.T
        for a, b in zip(*np.nonzero(np.triu(within >= self.duplicate_threshold, k=1)), strict=True):
            if owner[a] != owner[b]:
                found.append(
                    self._near(skus, vectors, owner, int(b), (None, skus[owner[a]]), None, within[a, b])
                )
        if found and self.duplicate_policy == "refuse":
            raise NearDuplicateError(found)
        return found

    @staticmethod
    def _near(
        skus: Sequence[str],
        vectors: Sequence[np.ndarray],
        owner: np.ndarray,
        row: int,
        other: tuple[int | None, str],
        image_id: int | None,
        score: float,
    ) -> NearDuplicate:
        first_row = int(np.searchsorted(owner, owner[row]))
        return NearDuplicate(
            skus[owner[row]], row - first_row, other[0], other[1], image_id, round(float(score), 6)
        )

    def image_owners(self, ids: np.ndarray) -> dict[int, tuple[int, str]]:
        """image id -> (product id, sku) for the valid ids in ``ids``."""
        wanted = sorted({int(i) for i in ids.flat if i >= 0})
        return {
            r["id"]: (r["product_id"], r["sku"])
            for r in self.db.rows_in(
                "SELECT i.id, i.product_id, p.sku FROM images i JOIN products p ON p.id = i.product_id"
                " WHERE i.id IN ({})",
                wanted,
            )
        }

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
        emb = self._checked_embeddings(images, embeddings)
        self._check_features(images, features)
        with self._write_lock:
            product = self.get_product(product_id)
            if product is None:
                return None
            duplicates = self._near_duplicates([product.sku], [emb], exclude_product=product_id)
            old = [i.id for i in product.images] if replace else []
            with self._image_files(images) as files, self.db.transaction() as db:
                old_paths = self._delete_images(db, old) if old else []
                self._insert_images(db, product_id, files, emb, features)
                if max_images is not None:
                    held = db.execute("SELECT count(*) FROM images WHERE product_id = ?", (product_id,))
                    if int(held.fetchall()[0][0]) > max_images:
                        raise TooManyImagesError(max_images)  # rolled back; the new files dropped
                db.execute("UPDATE products SET updated_at = ? WHERE id = ?", (_now(), product_id))
            self._after_commit(old_paths)
        if replace:
            self._maybe_compact()
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
            with self.db.transaction() as db:
                paths = self._delete_images(db, [image_id])
                db.execute("UPDATE products SET updated_at = ? WHERE id = ?", (_now(), product_id))
            self._after_commit(paths)
        self._maybe_compact()
        return self.get_product(product_id)

    def update_product(self, product_id: int, changes: dict[str, Any]) -> Product | None:
        """Change metadata (``UPDATABLE`` keys); None when there is no such product.
        Raises ``DuplicateSkuError`` for a sku another product has, ``ValueError`` for bad fields."""
        unknown = set(changes) - set(UPDATABLE)
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}; updatable: {', '.join(UPDATABLE)}")
        for key in ("sku", "title"):
            if key in changes and not changes[key]:
                raise ValueError(f"{key} cannot be empty")
        values = {k: attributes_json(v) if k == "attributes" else v for k, v in changes.items()}
        with self._write_lock:
            try:
                with self.db.transaction() as db:
                    sets = ", ".join(f"{k} = ?" for k in values)
                    updated = db.execute(
                        f"UPDATE products SET {sets}{', ' if sets else ''}updated_at = ? WHERE id = ?",
                        [*values.values(), _now(), product_id],
                    ).rowcount
            except self.db.integrity_errors as exc:
                raise DuplicateSkuError(str(changes.get("sku"))) from exc
        return self.get_product(product_id) if updated else None

    def remove_product(self, product_id: int) -> bool:
        """Delete a product with its images and vectors; False when there is no such product."""
        with self._write_lock:
            with self.db.transaction() as db:
                image_ids = [
                    r["id"] for r in db.execute("SELECT id FROM images WHERE product_id = ?", (product_id,))
                ]
                paths = self._delete_images(db, image_ids) if image_ids else []
                deleted = db.execute("DELETE FROM products WHERE id = ?", (product_id,)).rowcount
            if not deleted:
                return False
            self._after_commit(paths)
        self._maybe_compact()
        return True

    def _maybe_compact(self) -> None:
        """Rebuild when tombstones make up a quarter of the index (searches over-fetch past them).
        After a committed write: a failure is logged, and the next write tries again."""
        with self._vectors_lock.read():
            dead, total = len(self._vectors.tombstones), self._vectors.ntotal
        if dead < max(256, total // 4):
            return
        log.info("compacting the index: %d of %d vectors are tombstones", dead, total)
        try:
            try:
                self.rebuild(self.index_type)
            except ValueError as exc:  # e.g. too few vectors left to train this IVF: exact search will do
                log.warning("cannot rebuild a %s index (%s): compacting to Flat", self.index_type, exc)
                self.rebuild("Flat")
        except Exception as exc:
            if self._snapshot_owed:  # the new index is in use, its snapshot is not written
                self._catch_up_failed(exc)
            else:
                log.exception("compacting the index failed; searches skip its tombstones meanwhile")

    def snapshot(self) -> int:
        """Write the FAISS snapshot now; return the sequence number it holds."""
        with self._write_lock:
            if self._stale:
                self._reload_vectors()
            return self._write_snapshot()

    def _write_snapshot(self) -> int:
        try:
            with self._vectors_lock.read():  # searches go on; writers are held by _write_lock
                write_snapshot(self._vectors, self._applied_seq, self.directory / self.SNAPSHOT_NAME)
        except BaseException:
            self._snapshot_owed = True
            raise
        self._snapshot_owed = False
        self._snapshot_seq = self._applied_seq
        return self._snapshot_seq

    def rebuild(
        self, index_type: str = "auto", memory_budget_bytes: int = 4 << 30, sample: int = 1000
    ) -> RebuildReport:
        """Rebuild the FAISS index from the stored embeddings (no re-embedding), maybe of a new type.

        ``auto`` chooses from the vector count and ``memory_budget_bytes``. The search-time knob is
        tuned until recall@10 vs exact search on ``sample`` stored vectors reaches the target.
        Writers wait only for the final catch-up and swap; searches never wait for the build.
        """
        started = time.perf_counter()
        ids, vectors, seq = self._read_all_embeddings()
        chosen = (
            ann.choose_index_type(len(ids), self.dim, memory_budget_bytes)
            if index_type == "auto"
            else ann.normalise_type(index_type)
        )
        cpu = self._new_index(chosen, ids, vectors)
        tuning = ann.Tuning({}, 1.0)
        if len(ids):
            rows = np.sort(np.random.default_rng(0).choice(len(ids), min(sample, len(ids)), replace=False))
            truth = ids[ann.exact_neighbours(vectors, vectors[rows], 10)]
            tuning = ann.tune(cpu, vectors[rows], truth)
        with self._write_lock:
            fresh = self._wrap(cpu, chosen)
            with self.db.snapshot() as read:
                changes = read_changes(read, seq, self.dim)
            changes.apply_to(fresh)
            with self._vectors_lock.write():
                self._vectors = fresh
            self._stale = False
            self._applied_seq = changes.last_seq
            self._set_index_type(chosen)
            self._write_snapshot()
        return RebuildReport(chosen, len(ids), time.perf_counter() - started, tuning)

    # ----------------------------------------------------------------- reads
    def get_product(self, product_id: int) -> Product | None:
        return self._load_products([product_id]).get(product_id)

    def get_by_sku(self, sku: str) -> Product | None:
        rows = self.db.query("SELECT id FROM products WHERE sku = ?", (sku,))
        return self.get_product(rows[0]["id"]) if rows else None

    def existing_skus(self, skus: Iterable[str]) -> set[str]:
        return {r["sku"] for r in self.db.rows_in("SELECT sku FROM products WHERE sku IN ({})", list(skus))}

    def list_products(
        self, offset: int = 0, limit: int = 50, filter: SearchFilter | None = None
    ) -> list[Product]:
        """A page of products in id order, those matching ``filter`` when one is given."""
        where, params = (filter or SearchFilter()).where("p", self.db.dialect)
        rows = self.db.query(
            f"SELECT id FROM products p WHERE {where} ORDER BY id LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        loaded = self._load_products(r["id"] for r in rows)
        return [loaded[r["id"]] for r in rows if r["id"] in loaded]

    def categories(self) -> list[tuple[str, int]]:
        """(category, number of products) for every category in use, by name."""
        rows = self.db.query(
            "SELECT category, COUNT(*) AS n FROM products WHERE category IS NOT NULL AND category != ''"
            " GROUP BY category ORDER BY category"
        )
        return [(r["category"], int(r["n"])) for r in rows]

    def count(self) -> int:
        return int(self.db.scalar("SELECT COUNT(*) FROM products"))

    def image_count(self) -> int:
        return int(self.db.scalar("SELECT COUNT(*) FROM images"))

    def vector_count(self) -> int:
        """Live vectors in FAISS (tombstones excluded): equals ``image_count()`` between writes."""
        with self._vectors_lock.read():
            return self._vectors.live_count

    def index_info(self) -> dict[str, Any]:
        with self._vectors_lock.read():
            v = self._vectors
            return {
                "type": v.index_type,
                "device": "gpu" if v.on_gpu else "cpu",
                "vectors": v.ntotal,
                "tombstones": len(v.tombstones),
                "description": v.describe(),
            }

    @property
    def index_device(self) -> str:
        with self._vectors_lock.read():
            return "gpu" if self._vectors.on_gpu else "cpu"

    def vector_ids(self) -> tuple[set[int], set[int]]:
        """(ids FAISS holds, tombstones): for integrity checks."""
        with self._vectors_lock.read():
            cpu = self._vectors.cpu_index()
            return _id_map(cpu), set(self._vectors.tombstones)

    def iter_embeddings(self, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids (B,), embeddings (B, D)) of every stored image, in id order."""
        last = 0
        while True:
            rows = self.db.query(
                "SELECT id, embedding FROM images WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            )
            if not rows:
                return
            last = rows[-1]["id"]
            yield np.array([r["id"] for r in rows], dtype=np.int64), self._decode(rows)

    def image_file(self, image: ProductImage) -> Path:
        """The image's file here; fetched from the database first when it keeps the bytes and the
        file is not here yet (stored by another replica). Raises ``StoredPathError`` for a row whose
        path is not one this store writes (never read or written)."""
        path = resolve_image_path(self.directory, image.path, image.content_hash)
        if not path.exists() and (data := self.db.image_bytes(image.path)) is not None:
            with atomic_write(path) as f:
                f.write(data)
        return path

    def local_features(self, image_ids: Sequence[int]) -> dict[int, LocalFeatures]:
        """image id -> stored local features, for those of ``image_ids`` that have them."""
        return self.features.load(image_ids)

    def save_local_features(self, features: dict[int, LocalFeatures]) -> int:
        """Keep (or replace) the local features of stored images, e.g. of a store built before
        they existed; images deleted meanwhile are skipped. Returns how many were kept."""
        if not features:
            return 0
        with self._write_lock, self.db.transaction() as db:
            ids = [
                r["id"]
                for r in db.execute(
                    f"SELECT id FROM images WHERE id IN ({','.join('?' * len(features))})", list(features)
                )
            ]
            self.features.save(db, ids, [features[i] for i in ids])
        return len(ids)

    def nearest_images(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries (M, D) -> (scores, image ids), each (M, <=k); id -1 marks an empty place."""
        with self._vectors_lock.read():
            if self._vectors.live_count == 0:
                return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
            return self._vectors.search(queries, k)

    def search(
        self, queries: np.ndarray, k: int = 10, filter: SearchFilter | None = None
    ) -> list[list[SearchHit]]:
        """Top-``k`` products per query by their best image's cosine similarity.

        queries: (M, D) float32, L2-normalised -> M lists of at most ``k`` hits, best first.
        ``filter`` keeps only matching products: a selective one is answered exactly from the
        stored embeddings, a broader one inside FAISS (IDSelector) or by over-fetching, at most
        ``MAX_FETCH`` deep; a query still short of ``k`` then gets the exact answer.
        A product deleted while the search ran is left out, never returned.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must be (M, {self.dim}), got {queries.shape}")
        if k < 1:
            raise ValueError("k must be >= 1")
        allowed: np.ndarray | None = None
        if filter is not None and not filter.is_empty:
            where, params = filter.where("p", self.db.dialect)
            rows = self.db.query(
                f"SELECT i.id FROM images i JOIN products p ON p.id = i.product_id WHERE {where}", params
            )
            allowed = np.array(sorted(r["id"] for r in rows), dtype=np.int64)
            if len(allowed) <= EXACT_FILTER_LIMIT:
                return self._hits(self._exact_best(queries, k, allowed), k)
        best, complete = self._ann_search(queries, k, allowed)
        if allowed is not None and not complete:
            short = [i for i, b in enumerate(best) if len(b) < k]
            for i, exact in zip(short, self._exact_best(queries[short], k, allowed), strict=True):
                best[i] = exact
        return self._hits(best, k)

    def _hits(self, best: list[dict[int, tuple[float, int]]], k: int) -> list[list[SearchHit]]:
        """Per query: product id -> (score, image id), best first -> at most ``k`` hits."""
        products = self._load_products(pid for b in best for pid in b)
        return [
            [
                SearchHit(products[pid], score, image_id)
                for pid, (score, image_id) in b.items()
                if pid in products
            ][:k]
            for b in best
        ]

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
        words = text_words(query)
        if not words:
            return []
        where, params = (filter or SearchFilter()).where("p", self.db.dialect)
        sql, values = self.db.text_search(words, where, params, k)
        if timeout_s is None:
            rows = self.db.query(sql, values)
        else:
            rows = self.db.timed_query(sql, values, timeout_s)
        products = self._load_products(r["id"] for r in rows)
        return [TextHit(products[r["id"]], round(-float(r["rank"]), 6)) for r in rows if r["id"] in products]

    def similar(
        self, product_id: int, k: int = 10, filter: SearchFilter | None = None
    ) -> list[SearchHit] | None:
        """More like this: the ``k`` products nearest to any image of ``product_id`` (itself left
        out), from the stored embeddings; None when there is no such product."""
        rows = self.db.query(
            "SELECT id, embedding FROM images WHERE product_id = ? ORDER BY id", (product_id,)
        )
        if not rows:
            return None if self.get_product(product_id) is None else []
        best: dict[int, SearchHit] = {}
        for hits in self.search(self._decode(rows), k + 1, filter):  # one list per image of the product
            for hit in hits:
                pid = hit.product.id
                if pid != product_id and (pid not in best or hit.score > best[pid].score):
                    best[pid] = hit
        return sorted(best.values(), key=lambda h: -h.score)[:k]

    def _ann_search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[list[dict[int, tuple[float, int]]], bool]:
        """(per query: product id -> (best score, image id), best first; complete). Fetches
        deeper until several images per product, tombstones or a filter no longer crowd the
        top-k out, up to ``MAX_FETCH``: complete is False when a query got fewer than ``k``
        products there though the index holds more vectors."""
        fetch = k
        while True:
            with self._vectors_lock.read():
                total = self._vectors.ntotal
                if self._vectors.live_count == 0:
                    return [{} for _ in queries], True
                fetch = min(fetch, total, max(k, MAX_FETCH))
                inside = allowed is not None and self._vectors.supports_selector
                scores, ids = self._vectors.search(queries, fetch, allowed if inside else None)
            if allowed is not None and not inside:
                ids = np.where(np.isin(ids, allowed), ids, -1)
            owners = self.image_owners(ids)
            best: list[dict[int, tuple[float, int]]] = []
            for row_scores, row_ids in zip(scores, ids, strict=True):
                per_product: dict[int, tuple[float, int]] = {}
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

    def _exact_best(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> list[dict[int, tuple[float, int]]]:
        """Brute force over the stored embeddings of ``allowed`` image ids: per query, product id
        -> (best score, image id) of the ``k`` best products, best first. Reads the embeddings
        ``EXACT_CHUNK`` at a time and keeps only their scores."""
        image_ids: list[int] = []
        owners: list[int] = []
        parts: list[np.ndarray] = []
        for start in range(0, len(allowed), EXACT_CHUNK):
            rows = self.db.rows_in(
                "SELECT id, product_id, embedding FROM images WHERE id IN ({})",
                allowed[start : start + EXACT_CHUNK].tolist(),
            )
            if rows:
                image_ids += [int(r["id"]) for r in rows]
                owners += [int(r["product_id"]) for r in rows]
                parts.append(queries @ self._decode(rows).T)  # (M, chunk)
        if not parts:
            return [{} for _ in queries]
        scores = np.concatenate(parts, axis=1)  # (M, A)
        results = []
        for row in scores:
            best: dict[int, tuple[float, int]] = {}
            for j in np.argsort(-row, kind="stable"):
                if owners[j] not in best:
                    best[owners[j]] = (float(row[j]), image_ids[j])
                    if len(best) == k:
                        break
            results.append(best)
        return results

    def close(self) -> None:
        """Stop following other writers, write a final snapshot when anything changed since the
        last one, then close the database."""
        if self._follower is not None:
            self._follower.stop()
        self._closing = True
        if self._retry is not None:
            self._retry.stop()
            self._retry = None  # no reference cycle left: the store is freed without the GC
        with self._write_lock:
            # a FAISS index that a failed catch-up left half-updated is not saved: start-up
            # replays the change log from the last good snapshot instead
            try:
                if self._applied_seq != self._snapshot_seq and not self._stale:
                    self._write_snapshot()
            except Exception:
                log.exception("the final FAISS snapshot failed; the next start replays the change log")
            finally:
                self.db.close()

    def __enter__(self) -> ProductStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
