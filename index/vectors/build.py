"""Building a FAISS index from the stored embeddings: no re-embedding, maybe of another type.

Used at start-up when the snapshot cannot be used, by ``rebuild`` (a new index type, or
compaction of tombstones) and by nothing that holds a lock: the embeddings are read in one
snapshot on a connection of their own, so writers and searches go on meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import faiss
import numpy as np

from index.db.repository import Repository
from index.vectors import ann


@dataclass(frozen=True)
class RebuildReport:
    index_type: str
    vectors: int
    seconds: float
    tuning: ann.Tuning  # the search knobs chosen and recall@10 vs exact on a sample of stored vectors

    def summary(self) -> str:
        knobs = ", ".join(f"{k}={v}" for k, v in self.tuning.knobs.items()) or "exact"
        return (
            f"built {self.index_type} over {self.vectors:,} vectors in {self.seconds:.1f} s; recall@10 vs "
            f"exact search on a sample of stored vectors: {self.tuning.recall:.3f} ({knobs})"
        )


@dataclass(frozen=True)
class BuiltIndex:
    """An index built from the stored embeddings up to change ``seq``, not yet in use."""

    cpu: faiss.Index
    index_type: str
    vectors: int
    seq: int
    tuning: ann.Tuning
    started: float  # time.perf_counter() when the build began


def read_all_embeddings(repo: Repository) -> tuple[np.ndarray, np.ndarray, int]:
    """(ids (N,), embeddings (N, D), seq of the last change they include), in one snapshot."""
    with repo.db.snapshot(own_connection=True) as read:
        seq = repo.last_seq(read)
        ids, vectors = repo.all_embeddings(read)
    return ids, vectors, seq


def new_index(index_type: str, ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
    """A trained CPU index of ``index_type`` holding ``vectors`` (N, D) under ``ids`` (N,);
    ``ValueError`` when there are too few vectors to train it."""
    index = ann.new_index(index_type, vectors.shape[1])
    ann.train(index, vectors)
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors), ids)
    return index


def build(repo: Repository, index_type: str, memory_budget_bytes: int, sample: int) -> BuiltIndex:
    """A new index (``auto``: chosen from the vector count and ``memory_budget_bytes``), its
    search knob tuned until recall@10 vs exact search on ``sample`` stored vectors reaches the target."""
    started = time.perf_counter()
    ids, vectors, seq = read_all_embeddings(repo)
    chosen = (
        ann.choose_index_type(len(ids), repo.dim, memory_budget_bytes)
        if index_type == "auto"
        else ann.normalise_type(index_type)
    )
    cpu = new_index(chosen, ids, vectors)
    tuning = ann.Tuning({}, 1.0)
    if len(ids):
        rows = np.sort(np.random.default_rng(0).choice(len(ids), min(sample, len(ids)), replace=False))
        truth = ids[ann.exact_neighbours(vectors, vectors[rows], 10)]
        tuning = ann.tune(cpu, vectors[rows], truth)
    return BuiltIndex(cpu, chosen, len(ids), seq, tuning, started)
