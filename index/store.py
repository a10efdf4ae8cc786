"""ProductStore: the catalog's source of truth (SQLite) and its search cache (FAISS).

Lock discipline: one writer at a time (``_write_lock``) does SQLite commit, then FAISS update;
searches share the FAISS index under a readers-writer lock; every SQLite statement runs under
``_db_lock`` on one connection. An add is acknowledged only after its SQLite commit, so a crash
afterwards loses nothing: start-up loads the FAISS snapshot and replays newer changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from encoder import sniff_format
from encoder.atomic import atomic_write
from index.records import (
    DuplicateSkuError,
    EncoderMismatchError,
    NewProduct,
    Product,
    ProductImage,
    SearchHit,
)
from index.rwlock import ReadWriteLock
from index.vectors import (
    SnapshotError,
    gpu_count,
    new_flat_index,
    place,
    read_snapshot,
    write_snapshot,
)

log = logging.getLogger(__name__)
SCHEMA_VERSION = "1"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ProductStore:
    """Products, their images and embeddings, and a FAISS index over image ids.

    ``fingerprint``/``dim`` name the encoder whose embeddings this store holds. A new store
    records them; an existing one refuses a different fingerprint. Pass ``None`` to open an
    existing store with whatever encoder it was built with.
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
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._db_lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._vectors_lock = ReadWriteLock()
        self._conn = sqlite3.connect(
            self.directory / self.DB_NAME, check_same_thread=False, isolation_level=None
        )
        self._conn.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=FULL", "busy_timeout=5000"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.executescript(resources.files("index").joinpath("schema.sql").read_text())
        self.fingerprint, self.dim = self._check_encoder(fingerprint, dim)
        self.use_gpu = use_gpu and gpu_count() > 0
        self.snapshot_every = snapshot_every
        for stale in self.directory.glob(f".{self.SNAPSHOT_NAME}.*.tmp"):
            stale.unlink(missing_ok=True)  # a snapshot write interrupted by a crash
        self._index, self._applied_seq, self._snapshot_seq = self._load_vectors()

    # ----------------------------------------------------------------- set-up
    def _check_encoder(self, fingerprint: str | None, dim: int | None) -> tuple[str, int]:
        meta = {r["key"]: r["value"] for r in self._query("SELECT key, value FROM meta")}
        if not meta:
            if fingerprint is None or dim is None:
                raise ValueError(f"{self.directory} holds no store yet; give the encoder fingerprint and dim")
            with self._transaction() as db:
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("schema_version", SCHEMA_VERSION), ("fingerprint", fingerprint), ("dim", str(dim))],
                )
            return fingerprint, dim
        if fingerprint is not None and fingerprint != meta["fingerprint"]:
            raise EncoderMismatchError(
                f"{self.directory} was built with encoder {meta['fingerprint'][:12]}, not "
                f"{fingerprint[:12]}; re-embed the catalog into a new store with "
                "`lookalike build --catalog ... --encoder NEW.pt --store NEW_DIR` and switch to it"
            )
        if dim is not None and dim != int(meta["dim"]):
            raise EncoderMismatchError(f"store holds {meta['dim']}-d embeddings, encoder makes {dim}-d")
        return meta["fingerprint"], int(meta["dim"])

    def _load_vectors(self) -> tuple[Any, int, int]:
        """Load the snapshot and replay newer changes; rebuild from SQLite when it is unusable."""
        path = self.directory / self.SNAPSHOT_NAME
        last_seq = self._query("SELECT COALESCE(MAX(seq), 0) AS s FROM changes")[0]["s"]
        index, seq = None, 0
        if path.exists():
            try:
                index, seq = read_snapshot(path)
                if index.d != self.dim or seq > last_seq:
                    raise SnapshotError(f"{path} does not belong to this store")
            except SnapshotError as exc:
                log.warning("ignoring FAISS snapshot, rebuilding from SQLite: %s", exc)
                index = None
        if index is None:
            index, snapshot_seq = self._index_from_rows(self._query("SELECT id, embedding FROM images")), 0
        else:
            snapshot_seq = seq
            changes = self._query("SELECT op, image_id FROM changes WHERE seq > ?", (seq,))
            added = [c["image_id"] for c in changes if c["op"] == "add"]
            removed = [c["image_id"] for c in changes if c["op"] == "remove"]
            if removed:
                index.remove_ids(np.array(removed, dtype=np.int64))  # type: ignore[arg-type]
            rows = self._rows_in("SELECT id, embedding FROM images WHERE id IN ({})", added)
            self._add_rows(index, rows)
        n_images = self._query("SELECT COUNT(*) AS n FROM images")[0]["n"]
        if index.ntotal != n_images:
            log.warning("FAISS holds %d vectors, SQLite %d images: rebuilding", index.ntotal, n_images)
            index, snapshot_seq = self._index_from_rows(self._query("SELECT id, embedding FROM images")), 0
        return place(index, self.use_gpu), last_seq, snapshot_seq

    def _index_from_rows(self, rows: Sequence[sqlite3.Row]) -> Any:
        index = new_flat_index(self.dim)
        self._add_rows(index, rows)
        return index

    def _add_rows(self, index: Any, rows: Sequence[sqlite3.Row]) -> None:
        if rows:
            vectors = np.stack([np.frombuffer(r["embedding"], dtype=np.float32) for r in rows])
            index.add_with_ids(vectors, np.array([r["id"] for r in rows], dtype=np.int64))

    # ----------------------------------------------------------------- SQLite helpers
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._db_lock:
            return self._conn.execute(sql, params).fetchall()

    def _rows_in(self, sql: str, ids: Sequence[int | str]) -> list[sqlite3.Row]:
        """Run ``sql`` with its ``IN ({})`` filled by ``ids``, in chunks under SQLite's limit."""
        rows: list[sqlite3.Row] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows += self._query(sql.format(",".join("?" * len(chunk))), chunk)
        return rows

    class _Transaction:
        def __init__(self, store: ProductStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._db_lock.acquire()
            self.store._conn.execute("BEGIN IMMEDIATE")
            return self.store._conn

        def __exit__(self, exc_type: object, *_: object) -> None:
            try:
                self.store._conn.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.store._db_lock.release()

    def _transaction(self) -> ProductStore._Transaction:
        return ProductStore._Transaction(self)

    def _load_products(self, product_ids: Iterable[int]) -> dict[int, Product]:
        ids = sorted(set(product_ids))
        images: dict[int, list[ProductImage]] = {i: [] for i in ids}
        for r in self._rows_in(
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
            for r in self._rows_in("SELECT * FROM products WHERE id IN ({})", ids)
        }

    def _write_image_file(self, data: bytes) -> tuple[str, str]:
        """Store bytes under their sha256 (never a client's name); return (hash, relative path)."""
        digest = hashlib.sha256(data).hexdigest()
        ext = {"jpeg": "jpg"}.get(sniff_format(data) or "", sniff_format(data) or "bin")
        rel = f"{self.IMAGES_DIR}/{digest[:2]}/{digest}.{ext}"
        target = self.directory / rel
        if not target.exists():  # same bytes, same name: a file already there is this one
            with atomic_write(target) as f:
                f.write(data)
        return digest, rel

    # ----------------------------------------------------------------- writes
    def add_product(self, product: NewProduct) -> Product:
        return self.add_products([product])[0]

    def add_products(self, products: Sequence[NewProduct]) -> list[Product]:
        """Add products in one SQLite transaction, then to FAISS; all or nothing.

        Raises ``DuplicateSkuError`` (nothing is written) when a sku exists already or repeats,
        ``ValueError`` when images and embeddings do not fit this store.
        """
        vectors = [self._checked_embeddings(p) for p in products]
        skus = [p.sku for p in products]
        if len(set(skus)) != len(skus):
            raise DuplicateSkuError(next(s for s in skus if skus.count(s) > 1))
        files = [[self._write_image_file(data) for data in p.images] for p in products]
        with self._write_lock:
            now = _now()
            product_ids: list[int] = []
            new_ids: list[int] = []
            try:
                with self._transaction() as db:
                    for p, emb, stored in zip(products, vectors, files, strict=False):
                        cur = db.execute(
                            "INSERT INTO products (sku, title, category, price, attributes, created_at,"
                            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (p.sku, p.title, p.category, p.price, json.dumps(p.attributes), now, now),
                        )
                        product_ids.append(int(cur.lastrowid or 0))
                        for vector, (digest, rel) in zip(emb, stored, strict=False):
                            cur = db.execute(
                                "INSERT INTO images (product_id, content_hash, path, embedding,"
                                " fingerprint, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                                (product_ids[-1], digest, rel, vector.tobytes(), self.fingerprint, now),
                            )
                            new_ids.append(int(cur.lastrowid or 0))
                            db.execute(
                                "INSERT INTO changes (op, image_id) VALUES ('add', ?)", (cur.lastrowid,)
                            )
            except sqlite3.IntegrityError as exc:
                dup = self.existing_skus(skus)
                if dup:
                    raise DuplicateSkuError(sorted(dup)[0]) from exc
                raise
            with self._vectors_lock.write():
                self._index.add_with_ids(np.concatenate(vectors), np.array(new_ids, dtype=np.int64))
            self._after_write()
        loaded = self._load_products(product_ids)
        return [loaded[i] for i in product_ids]

    def _checked_embeddings(self, product: NewProduct) -> np.ndarray:
        if not product.sku or not product.title:
            raise ValueError("a product needs a non-empty sku and title")
        if not product.images:
            raise ValueError(f"product {product.sku!r} has no image")
        emb = np.ascontiguousarray(product.embeddings, dtype=np.float32)
        if emb.shape != (len(product.images), self.dim):
            raise ValueError(
                f"expected embeddings of shape ({len(product.images)}, {self.dim}), got {emb.shape}"
            )
        norms = np.linalg.norm(emb, axis=1)
        if not np.all(np.isfinite(emb)) or not np.allclose(norms, 1.0, atol=1e-3):
            raise ValueError("embeddings must be finite and L2-normalised")
        return emb

    def remove_product(self, product_id: int) -> bool:
        """Delete a product with its images and vectors; False when there is no such product."""
        with self._write_lock:
            with self._transaction() as db:
                image_ids = [
                    r["id"] for r in db.execute("SELECT id FROM images WHERE product_id = ?", (product_id,))
                ]
                deleted = db.execute("DELETE FROM products WHERE id = ?", (product_id,)).rowcount
                db.executemany(
                    "INSERT INTO changes (op, image_id) VALUES ('remove', ?)", [(i,) for i in image_ids]
                )
            if not deleted:
                return False
            with self._vectors_lock.write():
                if self.use_gpu:  # GPU indexes cannot remove ids: rebuild from the source of truth
                    rows = self._query("SELECT id, embedding FROM images")
                    self._index = place(self._index_from_rows(rows), True)
                else:
                    self._index.remove_ids(np.array(image_ids, dtype=np.int64))
            self._after_write()
        return True

    def _after_write(self) -> None:
        """Advance the applied sequence number; snapshot every ``snapshot_every`` changes."""
        self._applied_seq = self._query("SELECT COALESCE(MAX(seq), 0) AS s FROM changes")[0]["s"]
        if self._applied_seq - self._snapshot_seq >= self.snapshot_every:
            self._write_snapshot()

    def snapshot(self) -> int:
        """Write the FAISS snapshot now; return the sequence number it holds."""
        with self._write_lock:
            return self._write_snapshot()

    def _write_snapshot(self) -> int:
        with self._vectors_lock.read():  # searches go on; writers are held by _write_lock
            write_snapshot(self._index, self._applied_seq, self.directory / self.SNAPSHOT_NAME)
        self._snapshot_seq = self._applied_seq
        return self._snapshot_seq

    # ----------------------------------------------------------------- reads
    def get_product(self, product_id: int) -> Product | None:
        return self._load_products([product_id]).get(product_id)

    def get_by_sku(self, sku: str) -> Product | None:
        rows = self._query("SELECT id FROM products WHERE sku = ?", (sku,))
        return self.get_product(rows[0]["id"]) if rows else None

    def existing_skus(self, skus: Iterable[str]) -> set[str]:
        return {r["sku"] for r in self._rows_in("SELECT sku FROM products WHERE sku IN ({})", list(skus))}

    def list_products(self, offset: int = 0, limit: int = 50, category: str | None = None) -> list[Product]:
        where, params = ("WHERE category = ?", [category]) if category else ("", [])
        rows = self._query(
            f"SELECT id FROM products {where} ORDER BY id LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        loaded = self._load_products(r["id"] for r in rows)
        return [loaded[r["id"]] for r in rows if r["id"] in loaded]

    def count(self) -> int:
        return self._query("SELECT COUNT(*) AS n FROM products")[0]["n"]

    def vector_count(self) -> int:
        with self._vectors_lock.read():
            return int(self._index.ntotal)

    def image_file(self, image: ProductImage) -> Path:
        return self.directory / image.path

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[SearchHit]]:
        """Top-``k`` products per query by their best image's cosine similarity.

        queries: (M, D) float32, L2-normalised -> M lists of at most ``k`` hits, best first.
        A product deleted while the search ran is left out, never returned.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must be (M, {self.dim}), got {queries.shape}")
        if k < 1:
            raise ValueError("k must be >= 1")
        fetch = k
        while True:
            with self._vectors_lock.read():
                total = int(self._index.ntotal)
                if total == 0:
                    return [[] for _ in range(len(queries))]
                fetch = min(fetch, total)
                scores, ids = self._index.search(queries, fetch)  # (M, fetch) each
            owners = {
                r["id"]: r["product_id"]
                for r in self._rows_in(
                    "SELECT id, product_id FROM images WHERE id IN ({})",
                    sorted({int(i) for i in ids.flat if i >= 0}),
                )
            }
            best: list[dict[int, tuple[float, int]]] = []
            for row_scores, row_ids in zip(scores, ids, strict=False):
                per_product: dict[int, tuple[float, int]] = {}
                for score, image_id in zip(row_scores, row_ids, strict=False):
                    pid = owners.get(int(image_id))
                    if pid is not None and pid not in per_product:
                        per_product[pid] = (float(score), int(image_id))
                best.append(per_product)
            if fetch >= total or all(len(b) >= k for b in best):
                break
            fetch *= 4  # several images of one product took the places: fetch deeper
        products = self._load_products(pid for b in best for pid in b)
        return [
            [
                SearchHit(products[pid], score, image_id)
                for pid, (score, image_id) in list(b.items())[:k]
                if pid in products
            ]
            for b in best
        ]

    def close(self) -> None:
        """Write a final snapshot when anything changed since the last one, then close SQLite."""
        with self._write_lock:
            if self._applied_seq != self._snapshot_seq:
                self._write_snapshot()
            with self._db_lock:
                self._conn.close()

    def __enter__(self) -> ProductStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
