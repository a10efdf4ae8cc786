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
from index.db import Repository, Transaction

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
    """save / load / count / missing of the local features of one store's images."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def save(
        self, tx: Transaction, image_ids: Sequence[int], features: Sequence[LocalFeatures | None]
    ) -> None:
        """Insert or replace the features of ``image_ids`` inside the caller's transaction."""
        rows = [
            (image_id, FEATURES_KIND, f.to_bytes())
            for image_id, f in zip(image_ids, features, strict=True)
            if f is not None
        ]
        self.repo.save_features(tx, rows)

    def load(self, image_ids: Sequence[int]) -> dict[int, LocalFeatures]:
        """image id -> its features, for the ids that have features of the current kind."""
        found = self.repo.features(image_ids, FEATURES_KIND)
        return {image_id: LocalFeatures.from_bytes(blob) for image_id, blob in found.items()}

    def count(self) -> int:
        """Images with features of the current kind."""
        return self.repo.count_features(FEATURES_KIND)

    def missing(self, batch: int = 64) -> Iterator[list[tuple[int, str, str]]]:
        """Batches of (image id, content hash, path) of the images without current features, by id."""
        last = 0
        while rows := self.repo.images_without_features(FEATURES_KIND, last, batch):
            last = rows[-1][0]
            yield rows
