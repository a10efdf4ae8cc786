"""The change log as FAISS reads it: the net effect of the changes newer than the last one applied.

Every add or removal of an image vector is numbered in commit order (``seq``, written by the
repository in the write's own transaction). FAISS follows the database by applying the changes
newer than the last one it holds: at start-up after loading a snapshot, after each write, and
(replicas sharing PostgreSQL) on an interval to pick up other writers' changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.db.base import Queries
from index.db.repository import Repository
from index.vectors.faiss_index import VectorIndex


@dataclass(frozen=True)
class ChangeBatch:
    """The net effect of the changes in (after, last_seq]: an image added and removed within
    them is in neither list."""

    added_ids: np.ndarray  # (N,) int64 image ids
    added: np.ndarray  # (N, D) float32 their embeddings
    removed: list[int]  # image ids to drop
    last_seq: int

    def __len__(self) -> int:
        return len(self.added_ids) + len(self.removed)

    def apply_to(self, vectors: VectorIndex) -> None:
        vectors.remove(self.removed)
        vectors.add(self.added_ids, self.added)


def read_changes(repo: Repository, read: Queries, after_seq: int) -> ChangeBatch:
    """The changes newer than ``after_seq`` with the embeddings they add. ``read`` should be one
    snapshot (``Database.snapshot()``), so the log and the image rows agree."""
    pending: dict[int, None] = {}  # added image ids, in order
    removed: list[int] = []
    last = after_seq
    for seq, op, image_id in repo.changes_after(read, after_seq):
        last = seq
        if op == "add":
            pending[image_id] = None
        elif image_id in pending:
            del pending[image_id]
        else:
            removed.append(image_id)
    ids, vectors = repo.embeddings(list(pending), read)
    return ChangeBatch(ids, vectors, removed, last)
