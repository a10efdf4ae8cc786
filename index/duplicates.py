"""The near-duplicate policy: is a new image (nearly) one the catalog already holds?

The same photo uploaded twice, or under two skus, makes two products that always come back
together. Before a write, each new image is compared with its nearest stored images (FAISS) and
with the other new images of the same write; a cosine at or above ``threshold`` is reported
(``report``), refused with ``NearDuplicateError`` so nothing is written (``refuse``), or not
looked for (``off``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np

from index.records import NearDuplicate, NearDuplicateError
from index.vectors.cache import VectorCache

DuplicatePolicy = Literal["off", "report", "refuse"]
POLICIES = ("off", "report", "refuse")


class DuplicateCheck:
    """Finds the near duplicates of a write's images under one policy and threshold."""

    def __init__(
        self,
        owners: Callable[[Iterable[int]], dict[int, tuple[int, str]]],
        threshold: float = 0.9,
        policy: DuplicatePolicy = "report",
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"duplicate_policy must be off, report or refuse, not {policy!r}")
        self.owners, self.threshold, self.policy = owners, threshold, policy

    def find(
        self,
        stored: VectorCache,
        skus: Sequence[str],
        vectors: Sequence[np.ndarray],
        exclude_product: int | None = None,
    ) -> list[NearDuplicate]:
        """Images of the new products (``vectors[i]``: (n_i, D) of ``skus[i]``) whose cosine to a
        stored image of another product, or to an earlier new product's image, reaches the
        threshold. Raises ``NearDuplicateError`` under the refuse policy."""
        if self.policy == "off" or not vectors:
            return []
        found: list[NearDuplicate] = []
        stacked = np.concatenate(vectors)  # (M, D)
        owner = np.repeat(np.arange(len(vectors)), [len(v) for v in vectors])  # (M,) new product
        with stored.reading() as index:
            scores, ids = index.search(stacked, 8) if index.live_count else (None, None)
        if ids is not None and scores is not None:
            owners = self.owners(int(i) for i in ids.flat if i >= 0)
            for row, (row_scores, row_ids) in enumerate(zip(scores, ids, strict=True)):
                for score, image_id in zip(row_scores, row_ids, strict=True):
                    pid_sku = owners.get(int(image_id))
                    if score >= self.threshold and pid_sku and pid_sku[0] != exclude_product:
                        found.append(_near(skus, owner, row, pid_sku, int(image_id), score))
                        break
        within = stacked @ stacked.T  # (M, M)
        for a, b in zip(*np.nonzero(np.triu(within >= self.threshold, k=1)), strict=True):
            if owner[a] != owner[b]:
                found.append(_near(skus, owner, int(b), (None, skus[owner[a]]), None, within[a, b]))
        if found and self.policy == "refuse":
            raise NearDuplicateError(found)
        return found


def _near(
    skus: Sequence[str],
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
