"""Weighted kNN monitor: leave-one-out kNN classification accuracy of embeddings in a labeled set.

The monitor of Wu et al. 2018 ("Unsupervised Feature Learning via Non-Parametric Instance
Discrimination"), as used by solo-learn and lightly to track self-supervised training without
training a classifier: every item is classified by a vote of its k nearest other items, each
vote weighted by exp(similarity / temperature).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from encoder import Encoder
from training.evaluate import embed_labeled

BLOCK_ROWS = 1024


def knn_top1(embeddings: np.ndarray, labels: np.ndarray, k: int = 20, temperature: float = 0.07) -> float:
    """Leave-one-out weighted kNN top-1 accuracy.

    embeddings: (N, D), L2-normalised; labels: (N,) of any comparable type. For each item, its
    min(k, N - 1) most similar other items (by inner product) vote for their labels with weight
    exp(sim / temperature); the label with the largest total weight (ties: the smallest label) is
    the prediction. Returns the share of items predicted correctly, in [0, 1]. The (N, N)
    similarities are computed in blocks of ``BLOCK_ROWS`` rows, so memory stays O(BLOCK_ROWS * N).
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    if embeddings.ndim != 2 or labels.shape != (embeddings.shape[0],):
        raise ValueError(f"need (N, D) embeddings and (N,) labels, got {embeddings.shape} and {labels.shape}")
    n = embeddings.shape[0]
    if n < 2:
        raise ValueError(f"leave-one-out kNN needs at least 2 items, got {n}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    k = min(k, n - 1)
    classes, targets = np.unique(labels, return_inverse=True)  # targets: (N,) in 0..C-1
    targets = targets.reshape(-1)
    n_classes = len(classes)
    correct = 0
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        rows = stop - start
        sims = embeddings[start:stop] @ embeddings.T  # (B, N)
        sims[np.arange(rows), np.arange(start, stop)] = -np.inf  # leave the item itself out
        nbrs = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (B, k), unordered
        nbr_sims = np.take_along_axis(sims, nbrs, axis=1).astype(np.float64)  # (B, k)
        # subtracting the row max leaves the argmax unchanged and keeps exp() in range
        weights = np.exp((nbr_sims - nbr_sims.max(axis=1, keepdims=True)) / temperature)  # (B, k)
        slots = np.arange(rows)[:, None] * n_classes + targets[nbrs]  # (B, k) flat (row, class)
        votes = np.bincount(slots.ravel(), weights=weights.ravel(), minlength=rows * n_classes)
        predicted = votes.reshape(rows, n_classes).argmax(axis=1)  # (B,)
        correct += int((predicted == targets[start:stop]).sum())
    return correct / n


def knn_monitor(
    encoder: Encoder,
    source: str | Path,
    label_column: str = "category",
    batch_size: int = 64,
    workers: int = 0,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Embed a labeled folder (label = parent folder) or CSV with ``encoder`` -> ``knn_top1``."""
    embeddings, labels = embed_labeled(encoder, str(source), label_column, batch_size, workers)
    return knn_top1(embeddings, np.asarray(labels), k=k, temperature=temperature)
