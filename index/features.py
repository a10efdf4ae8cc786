"""Persisting the local features of catalog photos (table ``image_features``), nothing else.

One row per image: the features' kind (``FEATURES_KIND``: detector, keypoints, image size) and the
blob ``LocalFeatures.to_bytes`` wrote. Rows of another kind are never handed out, so a change of
detector needs ``lookalike index features --store S`` and nothing more. Deleting an image deletes
its row (``ON DELETE CASCADE``, SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from encoder import ImageDecodeError
from encoder.local_features import FEATURES_KIND, LocalFeatures, extract_features
from index.db import Database, Transaction

log = logging.getLogger(__name__)


def features_of(images: Sequence[bytes]) -> tuple[LocalFeatures | None, ...]:
    """The local features of each image's bytes; None for bytes that are not a decodable image
    (such an image is stored, embedded and searched, only never re-ranked)."""
    found: list[LocalFeatures | None] = []
    for data in images:
        try:
            found.append(extract_features(data))
        except ImageDecodeError as exc:
            log.info("no local features for an image that does not decode: %s", exc)
            found.append(None)
    return tuple(found)


class FeatureTable:
    """save / load / missing over the ``image_features`` table of one store's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(
        self, tx: Transaction, image_ids: Sequence[int], features: Sequence[LocalFeatures | None]
    ) -> None:
        """Insert or replace the features of ``image_ids`` inside the caller's transaction."""
        rows = [
            (image_id, FEATURES_KIND, f.to_bytes())
            for image_id, f in zip(image_ids, features, strict=True)
            if f is not None
        ]
        if rows:
            tx.executemany(
                "INSERT INTO image_features (image_id, kind, data) VALUES (?, ?, ?) ON CONFLICT (image_id)"
                " DO UPDATE SET kind = excluded.kind, data = excluded.data",
                rows,
            )

    def load(self, image_ids: Sequence[int]) -> dict[int, LocalFeatures]:
        """image id -> its features, for the ids that have features of the current kind."""
        rows = self.db.rows_in(
            "SELECT image_id, data FROM image_features WHERE kind = ? AND image_id IN ({})",
            list(image_ids),
            (FEATURES_KIND,),
        )
        return {r["image_id"]: LocalFeatures.from_bytes(bytes(r["data"])) for r in rows}

    def count(self) -> int:
        """Images with features of the current kind."""
        return int(self.db.scalar("SELECT COUNT(*) FROM image_features WHERE kind = ?", (FEATURES_KIND,)))

    def missing(self, batch: int = 64) -> Iterator[list[tuple[int, str, str]]]:
        """Batches of (image id, content hash, path) of the images without current features, by id."""
        last = 0
        while rows := self.db.query(
            "SELECT i.id, i.content_hash, i.path FROM images i"
            " LEFT JOIN image_features f ON f.image_id = i.id AND f.kind = ?"
            " WHERE f.image_id IS NULL AND i.id > ? ORDER BY i.id LIMIT ?",
            (FEATURES_KIND, last, batch),
        ):
            last = rows[-1]["id"]
            yield [(r["id"], r["content_hash"], r["path"]) for r in rows]
