"""Reciprocal-rank fusion: one ranking from several (image similarity and text relevance)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

H = TypeVar("H", bound=Hashable)

RRF_K = 60  # the constant of Cormack et al. (2009): damps the weight of the very first ranks


def reciprocal_rank_fusion(rankings: Sequence[Sequence[H]], k: int = RRF_K) -> list[tuple[H, float]]:
    """Items of every ranking (best first) scored by sum(1 / (k + rank)), rank counted from 1;
    best first, ties kept in order of first appearance."""
    scores: dict[H, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])
