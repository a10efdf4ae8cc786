"""Outlier catalog photos: the images farthest from their nearest neighbours.

An image's outlier score is the mean cosine distance (1 - cosine) to its ``k`` nearest other
images. Odd, damaged or mislabelled photos (a blank frame, a photo of the wrong kind of product)
have no close neighbours and rise to the top; several photos of one product keep each other low.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.store import ProductStore


@dataclass(frozen=True)
class Outlier:
    image_id: int
    product_id: int
    sku: str
    score: float  # mean cosine distance to the k nearest other images, 0..2


def outlier_scores(store: ProductStore, k: int = 10, top: int = 20, batch: int = 1024) -> list[Outlier]:
    """The ``top`` images with the highest outlier score, highest first."""
    if k < 1 or top < 1:
        raise ValueError("k and top must be >= 1")
    image_ids: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for ids, vectors in store.iter_embeddings(batch):
        sims, found = store.nearest_images(vectors, k + 1)  # (B, k+1): usually the image itself first
        others = np.where(found == ids[:, None], -np.inf, np.where(found >= 0, sims, -np.inf))
        nearest = -np.sort(-others, axis=1)[:, :k]  # (B, k) best other similarities
        valid = np.isfinite(nearest)
        counts = np.maximum(valid.sum(axis=1), 1)
        mean_sim = np.where(valid, nearest, 0).sum(axis=1) / counts
        image_ids.append(ids)
        scores.append(np.where(valid.any(axis=1), 1 - mean_sim, 2.0))  # alone in the catalog: maximal
    if not image_ids:
        return []
    all_ids, all_scores = np.concatenate(image_ids), np.concatenate(scores)
    order = np.argsort(-all_scores, kind="stable")[:top]
    owners = store.image_owners(all_ids[order])
    return [
        Outlier(int(all_ids[i]), *owners[int(all_ids[i])], round(float(all_scores[i]), 6))
        for i in order
        if int(all_ids[i]) in owners
    ]
