"""The only code that knows the store's schema: every statement on its tables, behind named methods.

Products, images (with their embedding as a float32 blob), the change log, local features and the
meta table are read and written here and nowhere else; the store, the vector cache, search and
the offline jobs ask for what they need by name. Each statement is written once with ``?``
placeholders; what the dialects do differently (text search, image bytes, integrity checks,
attribute filters) is asked of the ``Database``. Write methods take the caller's transaction, so
one write of the store stays one transaction whatever it touches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from index.db.base import Database, Queries, Transaction
from index.db.filters import filter_where
from index.db.local_rows import LocalRows
from index.filters import SearchFilter
from index.records import Product, ProductImage
from index.text_query import TextWord

_PRODUCT_COLUMNS = "id, sku, title, category, price, attributes, created_at, updated_at"


def now() -> str:
    """The time stamp written in ``created_at`` / ``updated_at``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def decode_embeddings(ids: Sequence[int], blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Stored float32 blobs -> (N, dim); a blob of another size is damage, named with its image."""
    for image_id, blob in zip(ids, blobs, strict=True):
        if len(blob) != 4 * dim:
            raise ValueError(
                f"image {image_id}: stored embedding has {len(blob)} bytes, not {4 * dim}; "
                "run `lookalike index check` on this store"
            )
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dim)


@dataclass(frozen=True)
class ImageFacts:
    """One image row without its embedding, as the offline jobs (check, calibration) read it."""

    id: int
    product_id: int
    content_hash: str
    path: str
    fingerprint: str
    embedding_bytes: int  # the stored blob's length: 4 * dim when sound

    @property
    def image(self) -> ProductImage:
        return ProductImage(self.id, self.content_hash, self.path)


@dataclass(frozen=True)
class NewImage:
    """An image about to be inserted: its file (already written) and its (D,) embedding."""

    content_hash: str
    path: str
    data: bytes
    embedding: np.ndarray


class Repository(LocalRows):
    """Named reads and writes over one store's ``Database``, whose embeddings are ``dim``-d
    (0 until the store's meta has been read: ``index.db.migrations.prepare``)."""

    def __init__(self, db: Database, dim: int = 0) -> None:
        self.db, self.dim = db, dim

    def _vectors(self, rows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(ids (N,), embeddings (N, D)) of rows with ``id`` and ``embedding`` columns."""
        ids = [int(r["id"]) for r in rows]
        blobs = [bytes(r["embedding"]) for r in rows]
        return np.array(ids, dtype=np.int64), decode_embeddings(ids, blobs, self.dim)

    # ------------------------------------------------------------------ meta
    def meta(self, read: Queries | None = None) -> dict[str, str]:
        return {r["key"]: r["value"] for r in (read or self.db).query("SELECT key, value FROM meta")}

    def get_meta(self, key: str) -> str | None:
        return self.meta().get(key)

    def set_meta(self, key: str, value: str, tx: Transaction | None = None) -> None:
        """Keep a small named value (in ``tx`` when given, else in a transaction of its own)."""
        sql = "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        if tx is not None:
            tx.execute(sql, (key, value))
            return
        with self.db.transaction() as own:
            own.execute(sql, (key, value))

    def delete_meta(self, key: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM meta WHERE key = ?", (key,))

    def create_meta(self, values: dict[str, str]) -> bool:
        """Write the meta of a new store; False (nothing written) when another process made it first."""
        with self.db.transaction() as tx:
            if tx.execute("SELECT 1 FROM meta").fetchall():
                return False
            tx.executemany("INSERT INTO meta VALUES (?, ?)", list(values.items()))
        return True

    # ------------------------------------------------------------ change log
    def last_seq(self, read: Queries | None = None) -> int:
        return int((read or self.db).scalar("SELECT COALESCE(MAX(seq), 0) FROM changes"))

    def changes_after(self, read: Queries, seq: int) -> list[tuple[int, str, int]]:
        """(seq, op, image id) of the changes newer than ``seq``, in order."""
        rows = read.query("SELECT seq, op, image_id FROM changes WHERE seq > ? ORDER BY seq", (seq,))
        return [(int(r["seq"]), r["op"], int(r["image_id"])) for r in rows]

    def change_count(self) -> int:
        return int(self.db.scalar("SELECT COUNT(*) FROM changes"))

    # ------------------------------------------------------------ embeddings
    def embeddings(self, ids: Sequence[int], read: Queries | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, (N, D) embeddings) of the images among ``ids`` that exist, by id."""
        rows = (read or self.db).rows_in(
            "SELECT id, embedding FROM images WHERE id IN ({}) ORDER BY id", list(ids)
        )
        return self._vectors(rows)

    def all_embeddings(self, read: Queries) -> tuple[np.ndarray, np.ndarray]:
        """(ids (N,), embeddings (N, D)) of every image, by id."""
        return self._vectors(read.query("SELECT id, embedding FROM images ORDER BY id"))

    def iter_embedding_blobs(self, batch: int = 4096) -> Iterator[list[tuple[int, bytes]]]:
        """(image id, stored blob) of every image in id order, ``batch`` rows per read, undecoded
        (``lookalike index check`` reports blobs of the wrong size instead of failing on them)."""
        last = 0
        while rows := self.db.query(
            "SELECT id, embedding FROM images WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
        ):
            last = rows[-1]["id"]
            yield [(int(r["id"]), bytes(r["embedding"])) for r in rows]

    def iter_embeddings(self, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids (B,), embeddings (B, D)) of every image in id order, ``batch`` rows per read."""
        for rows in self.iter_embedding_blobs(batch):
            ids = [i for i, _ in rows]
            yield np.array(ids, dtype=np.int64), decode_embeddings(ids, [b for _, b in rows], self.dim)

    def product_embeddings(self, product_id: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.db.query(
            "SELECT id, embedding FROM images WHERE product_id = ? ORDER BY id", (product_id,)
        )
        return self._vectors(rows)

    def owned_embeddings(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image ids, product ids, (N, D) embeddings) of the images among ``ids`` that exist."""
        rows = self.db.rows_in("SELECT id, product_id, embedding FROM images WHERE id IN ({})", list(ids))
        image_ids, vectors = self._vectors(rows)
        return image_ids, np.array([int(r["product_id"]) for r in rows], dtype=np.int64), vectors

    # ---------------------------------------------------------------- images
    def image_ids(self, read: Queries | None = None) -> set[int]:
        return {int(r["id"]) for r in (read or self.db).query("SELECT id FROM images")}

    def image_owners(self, ids: Iterable[int]) -> dict[int, tuple[int, str]]:
        """image id -> (product id, sku) for those of ``ids`` that exist."""
        rows = self.db.rows_in(
            "SELECT i.id, i.product_id, p.sku FROM images i JOIN products p ON p.id = i.product_id"
            " WHERE i.id IN ({})",
            sorted(set(ids)),
        )
        return {r["id"]: (r["product_id"], r["sku"]) for r in rows}

    def image_ids_matching(self, filter: SearchFilter, among: Sequence[int] | None = None) -> np.ndarray:
        """(A,) sorted int64 ids of the images whose product matches ``filter`` (of ``among`` only,
        when given: a lookup by id instead of a scan of every matching image)."""
        where, params = filter_where(filter, "p", self.db.dialect)
        sql = f"SELECT i.id FROM images i JOIN products p ON p.id = i.product_id WHERE {where}"
        if among is None:
            rows = self.db.query(sql, params)
        else:
            rows = self.db.rows_in(sql + " AND i.id IN ({})", list(among), params)
        return np.array(sorted(r["id"] for r in rows), dtype=np.int64)

    def image_facts(self) -> list[ImageFacts]:
        """Every image row, by id, without its embedding (read those with ``embeddings``)."""
        rows = self.db.query(
            "SELECT id, product_id, content_hash, path, fingerprint, length(embedding) AS n"
            " FROM images ORDER BY id"
        )
        return [
            ImageFacts(r["id"], r["product_id"], r["content_hash"], r["path"], r["fingerprint"], int(r["n"]))
            for r in rows
        ]

    def path_in_use(self, path: str) -> bool:
        """Whether any image row points at the file ``path``."""
        return bool(self.db.scalar("SELECT 1 FROM images WHERE path = ? LIMIT 1", (path,)))

    def image_bytes(self, path: str) -> bytes | None:
        return self.db.image_bytes(path)

    def insert_images(
        self, tx: Transaction, product_id: int, images: Sequence[NewImage], fingerprint: str
    ) -> list[int]:
        """Insert image rows (and log their addition); their ids, in order."""
        stamp, ids = now(), []
        for image in images:
            self.db.save_image_bytes(tx, image.path, image.data)
            cur = tx.execute(
                "INSERT INTO images (product_id, content_hash, path, embedding, fingerprint, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (product_id, image.content_hash, image.path, image.embedding.tobytes(), fingerprint, stamp),
            )
            ids.append(int(cur.fetchall()[0][0]))
        tx.executemany("INSERT INTO changes (op, image_id) VALUES ('add', ?)", [(i,) for i in ids])
        return ids

    def delete_images(self, tx: Transaction, image_ids: Sequence[int]) -> list[str]:
        """Delete image rows (logging their removal); return their file paths."""
        if not image_ids:
            return []
        marks = ",".join("?" * len(image_ids))
        paths = [
            r["path"] for r in tx.execute(f"SELECT path FROM images WHERE id IN ({marks})", list(image_ids))
        ]
        tx.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in image_ids])
        tx.executemany("INSERT INTO changes (op, image_id) VALUES ('remove', ?)", [(i,) for i in image_ids])
        self.db.drop_unused_image_bytes(tx, paths)
        return paths

    def existing_image_ids(self, tx: Transaction, ids: Sequence[int]) -> list[int]:
        marks = ",".join("?" * len(ids))
        return [r["id"] for r in tx.execute(f"SELECT id FROM images WHERE id IN ({marks})", list(ids))]

    def product_image_ids(self, tx: Transaction, product_id: int) -> list[int]:
        return [r["id"] for r in tx.execute("SELECT id FROM images WHERE product_id = ?", (product_id,))]

    def count_product_images(self, tx: Transaction, product_id: int) -> int:
        cur = tx.execute("SELECT count(*) FROM images WHERE product_id = ?", (product_id,))
        return int(cur.fetchall()[0][0])

    # -------------------------------------------------------------- products
    def load_products(self, product_ids: Iterable[int]) -> dict[int, Product]:
        """product id -> Product with its images, for those of ``product_ids`` that exist."""
        ids = sorted(set(product_ids))
        images: dict[int, list[ProductImage]] = {i: [] for i in ids}
        for r in self.db.rows_in(
            "SELECT id, product_id, content_hash, path FROM images WHERE product_id IN ({}) ORDER BY id", ids
        ):
            images[r["product_id"]].append(ProductImage(r["id"], r["content_hash"], r["path"]))
        rows = self.db.rows_in(f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE id IN ({{}})", ids)
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
            for r in rows
        }

    def product_id_by_sku(self, sku: str) -> int | None:
        rows = self.db.query("SELECT id FROM products WHERE sku = ?", (sku,))
        return int(rows[0]["id"]) if rows else None

    def existing_skus(self, skus: Iterable[str]) -> set[str]:
        return {r["sku"] for r in self.db.rows_in("SELECT sku FROM products WHERE sku IN ({})", list(skus))}

    def product_ids_page(self, filter: SearchFilter, offset: int, limit: int) -> list[int]:
        where, params = filter_where(filter, "p", self.db.dialect)
        rows = self.db.query(
            f"SELECT id FROM products p WHERE {where} ORDER BY id LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [int(r["id"]) for r in rows]

    def categories(self) -> list[tuple[str, int]]:
        rows = self.db.query(
            "SELECT category, COUNT(*) AS n FROM products WHERE category IS NOT NULL AND category != ''"
            " GROUP BY category ORDER BY category"
        )
        return [(r["category"], int(r["n"])) for r in rows]

    def count_products(self) -> int:
        return int(self.db.scalar("SELECT COUNT(*) FROM products"))

    def count_images(self) -> int:
        return int(self.db.scalar("SELECT COUNT(*) FROM images"))

    def products_without_images(self) -> list[tuple[int, str]]:
        rows = self.db.query("SELECT id, sku FROM products WHERE id NOT IN (SELECT product_id FROM images)")
        return [(int(r["id"]), r["sku"]) for r in rows]

    def text_search(
        self, words: Sequence[TextWord], filter: SearchFilter, k: int, timeout_s: float | None
    ) -> list[tuple[int, float]]:
        """(product id, rank: lower is better) of the ``k`` best products holding every word."""
        where, params = filter_where(filter, "p", self.db.dialect)
        sql, values = self.db.text_search(words, where, params, k)
        rows = (
            self.db.query(sql, values) if timeout_s is None else self.db.timed_query(sql, values, timeout_s)
        )
        return [(int(r["id"]), float(r["rank"])) for r in rows]

    def insert_product(
        self,
        tx: Transaction,
        sku: str,
        title: str,
        category: str | None,
        price: float | None,
        attributes: str,
        stamp: str,
    ) -> int:
        """Insert a product row (``attributes`` as checked JSON text); its id."""
        cur = tx.execute(
            "INSERT INTO products (sku, title, category, price, attributes, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (sku, title, category, price, attributes, stamp, stamp),
        )
        return int(cur.fetchall()[0][0])

    def update_product(self, tx: Transaction, product_id: int, values: dict[str, Any]) -> bool:
        """Set ``values`` (column -> value, names checked by the caller) and ``updated_at``;
        False when there is no such product."""
        sets = "".join(f"{column} = ?, " for column in values)
        cur = tx.execute(
            f"UPDATE products SET {sets}updated_at = ? WHERE id = ?", [*values.values(), now(), product_id]
        )
        return bool(cur.rowcount)

    def touch_product(self, tx: Transaction, product_id: int) -> None:
        tx.execute("UPDATE products SET updated_at = ? WHERE id = ?", (now(), product_id))

    def delete_product(self, tx: Transaction, product_id: int) -> bool:
        return bool(tx.execute("DELETE FROM products WHERE id = ?", (product_id,)).rowcount)

    def integrity_problems(self) -> list[str]:
        return self.db.integrity_problems()
