"""The SQL of local features (table ``image_features``) and of the local index's codebook (table
``local_codebook``): the part of ``Repository`` that the local-feature index reads and writes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from index.db.base import Database, Transaction


class LocalRows:
    """Mixed into ``Repository``; ``db`` is its database."""

    db: Database

    # -------------------------------------------------------- local features
    def save_features(self, tx: Transaction, rows: Sequence[tuple[int, str, bytes]]) -> None:
        """Insert or replace (image id, kind, blob) rows."""
        if rows:
            tx.executemany(
                "INSERT INTO image_features (image_id, kind, data) VALUES (?, ?, ?) ON CONFLICT (image_id)"
                " DO UPDATE SET kind = excluded.kind, data = excluded.data",
                list(rows),
            )

    def features(self, image_ids: Sequence[int], kind: str) -> dict[int, bytes]:
        rows = self.db.rows_in(
            "SELECT image_id, data FROM image_features WHERE kind = ? AND image_id IN ({})",
            list(image_ids),
            (kind,),
        )
        return {r["image_id"]: bytes(r["data"]) for r in rows}

    def iter_features(self, kind: str, batch: int = 1024) -> Iterator[list[tuple[int, bytes]]]:
        """Batches of (image id, blob) of every image with features of ``kind``, by id."""
        last = 0
        while rows := self.db.query(
            "SELECT image_id, data FROM image_features WHERE kind = ? AND image_id > ?"
            " ORDER BY image_id LIMIT ?",
            (kind, last, batch),
        ):
            last = int(rows[-1]["image_id"])
            yield [(int(r["image_id"]), bytes(r["data"])) for r in rows]

    def count_features(self, kind: str | None = None) -> int:
        """Images with features (of ``kind`` when given)."""
        if kind is None:
            return int(self.db.scalar("SELECT COUNT(*) FROM image_features"))
        return int(self.db.scalar("SELECT COUNT(*) FROM image_features WHERE kind = ?", (kind,)))

    def mean_features_bytes(self, kind: str | None = None) -> float:
        """The mean size of the stored feature blobs (of ``kind`` when given); 0 when there are none."""
        if kind is None:
            return float(self.db.scalar("SELECT AVG(LENGTH(data)) FROM image_features") or 0)
        return float(
            self.db.scalar("SELECT AVG(LENGTH(data)) FROM image_features WHERE kind = ?", (kind,)) or 0
        )

    def images_without_features(self, kind: str, after_id: int, limit: int) -> list[tuple[int, str, str]]:
        """(image id, content hash, path) of up to ``limit`` images past ``after_id`` lacking ``kind``."""
        rows = self.db.query(
            "SELECT i.id, i.content_hash, i.path FROM images i"
            " LEFT JOIN image_features f ON f.image_id = i.id AND f.kind = ?"
            " WHERE f.image_id IS NULL AND i.id > ? ORDER BY i.id LIMIT ?",
            (kind, after_id, limit),
        )
        return [(int(r["id"]), r["content_hash"], r["path"]) for r in rows]

    def delete_features_not_of(self, tx: Transaction, kind: str) -> int:
        """Drop the feature rows of any other kind (e.g. of an earlier codebook); how many."""
        return int(tx.execute("DELETE FROM image_features WHERE kind <> ?", (kind,)).rowcount)

    # -------------------------------------------------------- codebook
    def save_codebook(self, tx: Transaction, name: str, data: bytes) -> None:
        tx.execute(
            "INSERT INTO local_codebook (name, data) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET data = excluded.data",
            (name, data),
        )

    def codebook(self, name: str) -> bytes | None:
        rows = self.db.query("SELECT data FROM local_codebook WHERE name = ?", (name,))
        return bytes(rows[0]["data"]) if rows else None

    def delete_codebooks_except(self, tx: Transaction, name: str) -> None:
        tx.execute("DELETE FROM local_codebook WHERE name <> ?", (name,))
