"""Retrieval quality: recall@k and mAP@k of a query set against a labeled gallery."""

from __future__ import annotations

import numpy as np


def rank_gallery(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` most similar gallery rows per query, by inner product.

    queries: (Q, D), gallery: (G, D), both L2-normalised -> (Q, min(k, G)) int64, best first.
    Exact search; ties are broken by gallery order (stable sort).
    """
    scores = queries @ gallery.T  # scores: (Q, G)
    k = min(k, gallery.shape[0])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def recall_at_k(ranked_labels: np.ndarray, query_labels: np.ndarray, k: int) -> float:
    """Share of queries with at least one same-label item in their top ``k``.

    ranked_labels: (Q, K) labels of the ranked gallery items, query_labels: (Q,).
    """
    hits = ranked_labels[:, :k] == query_labels[:, None]  # (Q, k)
    return float(hits.any(axis=1).mean())


def mean_average_precision_at_k(
    ranked_labels: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray, k: int
) -> float:
    """mAP@k: per query, the mean of precision@i over the ranks i <= k that hold a relevant
    item, divided by min(k, relevant items in the gallery); then averaged over queries."""
    rel = (ranked_labels[:, :k] == query_labels[:, None]).astype(np.float64)  # (Q, k)
    precision = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)  # (Q, k)
    n_relevant = (gallery_labels[None, :] == query_labels[:, None]).sum(axis=1)  # (Q,)
    denom = np.minimum(n_relevant, k)
    ap = np.where(denom > 0, (precision * rel).sum(axis=1) / np.maximum(denom, 1), 0.0)
    return float(ap.mean())


def retrieval_report(
    queries: np.ndarray,
    query_labels: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    ks: tuple[int, ...] = (1, 5, 10),
    map_k: int = 10,
) -> dict[str, float]:
    """{"recall@1": ..., "recall@5": ..., "recall@10": ..., "map@10": ...}."""
    ranked = rank_gallery(queries, gallery, max(*ks, map_k))
    ranked_labels = gallery_labels[ranked]  # (Q, K)
    report = {f"recall@{k}": recall_at_k(ranked_labels, query_labels, k) for k in ks}
    report[f"map@{map_k}"] = mean_average_precision_at_k(ranked_labels, query_labels, gallery_labels, map_k)
    return report


def recall_curve(ranked_labels: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    """recall@k for every k = 1..K at once: (K,) float64, entry k - 1 = ``recall_at_k(..., k)``.

    ranked_labels: (Q, K) labels of the ranked gallery items, query_labels: (Q,).
    """
    hits = ranked_labels == query_labels[:, None]  # (Q, K)
    return np.logical_or.accumulate(hits, axis=1).mean(axis=0)


def first_hit_rank(
    queries: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray
) -> np.ndarray:
    """1-based rank of the first same-label gallery item per query over the whole gallery, in the
    order of ``rank_gallery`` (ties broken by gallery order); 0 where the gallery holds none.

    queries: (Q, D), gallery: (G, D) -> (Q,) int64. Needs no sort: the first hit is the best
    scoring relevant item, and its rank counts the items ordered before it.
    """
    scores = queries @ gallery.T  # scores: (Q, G)
    relevant = gallery_labels[None, :] == query_labels[:, None]  # (Q, G)
    best = np.argmax(np.where(relevant, scores, -np.inf), axis=1)  # (Q,) first best relevant item
    best_score = np.take_along_axis(scores, best[:, None], axis=1)  # (Q, 1)
    earlier = np.arange(gallery.shape[0])[None, :] < best[:, None]  # (Q, G)
    before = (scores > best_score) | ((scores == best_score) & earlier)  # (Q, G)
    return np.where(relevant.any(axis=1), before.sum(axis=1) + 1, 0).astype(np.int64)
