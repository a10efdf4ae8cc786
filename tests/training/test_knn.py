from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from encoder import load_encoder
from training import knn
from training.knn import knn_monitor, knn_top1


def brute_force_knn_top1(embeddings: np.ndarray, labels: np.ndarray, k: int, temperature: float) -> float:
    """The definition, one item at a time, in plain Python."""
    n = len(labels)
    k = min(k, n - 1)
    correct = 0
    for i in range(n):
        sims = [(float(np.dot(embeddings[i], embeddings[j])), j) for j in range(n) if j != i]
        sims.sort(key=lambda t: -t[0])
        votes: dict[int, float] = {}
        for sim, j in sims[:k]:
            votes[int(labels[j])] = votes.get(int(labels[j]), 0.0) + math.exp(sim / temperature)
        predicted = max(sorted(votes), key=lambda c: votes[c])
        correct += predicted == labels[i]
    return correct / n


def random_set(seed: int, n: int = 40, dim: int = 8, n_classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Normalised (n, dim) embeddings with a weak class signal, and (n,) labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = rng.normal(size=(n_classes, dim))
    x = centres[labels] * 0.7 + rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("k", "temperature"), [(1, 0.07), (5, 0.07), (20, 0.07), (10, 1.0)])
def test_matches_brute_force(seed: int, k: int, temperature: float) -> None:
    x, labels = random_set(seed)
    expected = brute_force_knn_top1(x.astype(np.float64), labels, k, temperature)
    assert knn_top1(x, labels, k=k, temperature=temperature) == pytest.approx(expected)


def test_blocks_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    x, labels = random_set(7, n=50)
    whole = knn_top1(x, labels, k=7)
    monkeypatch.setattr(knn, "BLOCK_ROWS", 8)  # 50 rows -> 7 blocks, the last one partial
    assert knn_top1(x, labels, k=7) == whole


def test_perfect_separation_is_one() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)  # (40,)
    x = np.eye(16)[labels * 4] + 0.01 * rng.normal(size=(40, 16))  # one axis per class, tiny noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert knn_top1(x, labels, k=5) == 1.0


def test_string_labels() -> None:
    x = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99]], dtype=np.float32)
    labels = np.array(["shirt", "shirt", "shoe", "shoe"])
    assert knn_top1(x, labels, k=1) == 1.0


def test_k_larger_than_the_set_is_clamped() -> None:
    x, labels = random_set(3, n=12)
    clamped = knn_top1(x, labels, k=11)
    assert knn_top1(x, labels, k=100) == clamped
    assert clamped == pytest.approx(brute_force_knn_top1(x.astype(np.float64), labels, 11, 0.07))
    # two items: each one's only neighbour is the other
    assert knn_top1(x[:2], np.array([0, 0]), k=20) == 1.0
    assert knn_top1(x[:2], np.array([0, 1]), k=20) == 0.0


def test_rejects_bad_input() -> None:
    x, labels = random_set(0, n=5)
    with pytest.raises(ValueError):
        knn_top1(x[:1], labels[:1])
    with pytest.raises(ValueError):
        knn_top1(x, labels, k=0)
    with pytest.raises(ValueError):
        knn_top1(x, labels[:4])


def test_knn_monitor_on_a_folder(photo_folder: Path, tiny_encoder_path: Path) -> None:
    accuracy = knn_monitor(load_encoder(tiny_encoder_path), str(photo_folder), k=3)
    assert 0.0 <= accuracy <= 1.0
