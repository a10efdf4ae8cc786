import numpy as np
import pytest

from training.metrics import rank_gallery, retrieval_report


def brute_force(queries, q_labels, gallery, g_labels, k):
    recall, aps = 0, []
    for q, label in zip(queries, q_labels, strict=True):
        order = sorted(range(len(gallery)), key=lambda i: -float(q @ gallery[i]))[:k]
        rel = [g_labels[i] == label for i in order]
        recall += any(rel)
        hits, precisions = 0, []
        for rank, r in enumerate(rel, 1):
            if r:
                hits += 1
                precisions.append(hits / rank)
        n_rel = min(k, sum(g == label for g in g_labels))
        aps.append(sum(precisions) / n_rel if n_rel else 0.0)
    return recall / len(queries), float(np.mean(aps))


def unit(rng, n, d):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(3))
def test_recall_and_map_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q, g = unit(rng, 20, 8), unit(rng, 50, 8)
    q_labels, g_labels = rng.integers(0, 4, 20), rng.integers(0, 4, 50)
    report = retrieval_report(q, q_labels, g, g_labels)
    for k in (1, 5, 10):
        assert report[f"recall@{k}"] == pytest.approx(brute_force(q, q_labels, g, g_labels, k)[0])
    assert report["map@10"] == pytest.approx(brute_force(q, q_labels, g, g_labels, 10)[1])


def test_perfect_and_ranked_order() -> None:
    g = np.eye(4, dtype=np.float32)
    assert rank_gallery(g[:2], g, 2)[:, 0].tolist() == [0, 1]
    report = retrieval_report(g, np.arange(4), g, np.arange(4))
    assert report["recall@1"] == 1.0 and report["map@10"] == 1.0
