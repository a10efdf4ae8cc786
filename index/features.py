"""Persisting the local features of catalog photos (table ``image_features``), nothing else.

One row per image: its kind (``sift300@400/asmk-<codebook name>``: the detector and the codebook
that encoded it) and the blob ``CompactFeatures.to_bytes`` wrote (visual words, residual signs,
PQ codes, keypoint positions; ``index/local/compact.py``). Rows of another kind are never handed
out, so a new codebook needs ``lookalike index features --store S`` and nothing more. A store
without a codebook keeps no features. Deleting an image deletes its row (``ON DELETE CASCADE``,
SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from encoder import ImageDecodeError
from encoder.local_features import LocalFeatures, extract_features
from index.db import Repository, Transaction
from index.local.cache import LocalIndex
from index.local.compact import CompactFeatures

log = logging.getLogger(__name__)


def features_of(images: Sequence[bytes]) -> tuple[LocalFeatures | None, ...]:
    """The local features of each image's bytes; None for bytes that are not a decodable image
    (such an image is stored, embedded and searched, only never matched locally)."""
    found: list[LocalFeatures | None] = []
    for data in images:
        try:
            found.append(extract_features(data))
        except ImageDecodeError as exc:
            log.info("no local features for an image that does not decode: %s", exc)
            found.append(None)
    return tuple(found)


class FeatureTable:
    """save / load / count / missing of the compact local features of one store's images."""

    def __init__(self, repo: Repository, local: LocalIndex) -> None:
        self.repo, self.local = repo, local

    def save(
        self, tx: Transaction, image_ids: Sequence[int], features: Sequence[LocalFeatures | None]
    ) -> None:
        """Encode with the store's codebook and insert or replace, inside the caller's
        transaction; nothing without a codebook (the store matches nothing locally)."""
        codebook, kind = self.local.codebook, self.local.kind
        if codebook is None or kind is None:
            return
        rows = [
            (image_id, kind, codebook.encode(f).to_bytes())
            for image_id, f in zip(image_ids, features, strict=True)
            if f is not None
        ]
        self.repo.save_features(tx, rows)

    def load(self, image_ids: Sequence[int]) -> dict[int, CompactFeatures]:
        """image id -> its compact features, for the ids that have features of the current kind."""
        if self.local.kind is None or not image_ids:
            return {}
        found = self.repo.features(image_ids, self.local.kind)
        return {image_id: CompactFeatures.from_bytes(blob) for image_id, blob in found.items()}

    def count(self) -> int:
        """Images with features of the current kind."""
        return self.repo.count_features(self.local.kind) if self.local.kind else 0

    def mean_bytes(self) -> float:
        return self.repo.mean_features_bytes(self.local.kind) if self.local.kind else 0.0

    def missing(self, batch: int = 64) -> Iterator[list[tuple[int, str, str]]]:
        """Batches of (image id, content hash, path) of the images without current features, by id."""
        if self.local.kind is None:
            return
        last = 0
        while rows := self.repo.images_without_features(self.local.kind, last, batch):
            last = rows[-1][0]
            yield rows
