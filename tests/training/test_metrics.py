import numpy as np
import pytest

from training.metrics import first_hit_rank, rank_gallery, recall_at_k, recall_curve, retrieval_report


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


@pytest.mark.parametrize("seed", range(3))
def test_first_hit_rank_matches_a_full_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q, g = unit(rng, 30, 4), unit(rng, 40, 4)
    g[5] = g[3]  # tied scores: the earlier gallery row ranks first, as in rank_gallery
    q_labels, g_labels = rng.integers(0, 6, 30), rng.integers(0, 5, 40)  # label 5: not in the gallery
    order = rank_gallery(q, g, len(g))  # (Q, G), the full ranking
    expected = [
        next((r + 1 for r, j in enumerate(row) if g_labels[j] == label), 0)
        for row, label in zip(order, q_labels, strict=True)
    ]
    assert first_hit_rank(q, q_labels, g, g_labels).tolist() == expected
    assert 0 in expected and max(expected) > 1  # the cases worth checking occur


def test_first_hit_rank_counts_ties_in_gallery_order() -> None:
    g = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    assert first_hit_rank(q, np.array(["b"]), g, np.array(["a", "b", "b"])).tolist() == [2]
    assert first_hit_rank(q, np.array(["a"]), g, np.array(["a", "b", "b"])).tolist() == [1]
    assert first_hit_rank(q, np.array(["z"]), g, np.array(["a", "b", "b"])).tolist() == [0]


def test_recall_curve_is_recall_at_every_k() -> None:
    rng = np.random.default_rng(0)
    q, g = unit(rng, 25, 8), unit(rng, 60, 8)
    q_labels, g_labels = rng.integers(0, 10, 25), rng.integers(0, 10, 60)
    ranked_labels = g_labels[rank_gallery(q, g, 20)]  # (Q, 20)
    curve = recall_curve(ranked_labels, q_labels)
    assert curve.shape == (20,)
    assert curve.tolist() == pytest.approx([recall_at_k(ranked_labels, q_labels, k) for k in range(1, 21)])
    assert np.all(np.diff(curve) >= 0)
