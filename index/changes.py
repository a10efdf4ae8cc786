"""The change log: every add or removal of an image vector, numbered in commit order (``seq``).

FAISS follows the database by applying the changes newer than the last one it holds: at start-up
after loading a snapshot, after each write, and (replicas sharing PostgreSQL) on an interval to
pick up other writers' changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index.db import Queries
from index.vectors import VectorIndex


def decode_embeddings(ids: Sequence[int], blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Stored float32 blobs -> (N, dim); a blob of another size is damage, named with its image."""
    for image_id, blob in zip(ids, blobs, strict=True):
        if len(blob) != 4 * dim:
            raise ValueError(
                f"image {image_id}: stored embedding has {len(blob)} bytes, not {4 * dim}; "
                "run `lookalike index check` on this store"
            )
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dim)


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


def read_changes(read: Queries, after_seq: int, dim: int) -> ChangeBatch:
    """The changes newer than ``after_seq`` with the embeddings they add. ``read`` should be one
    snapshot (``Database.snapshot()``), so the log and the image rows agree."""
    pending: dict[int, None] = {}  # added image ids, in order
    removed: list[int] = []
    last = after_seq
    log = read.query("SELECT seq, op, image_id FROM changes WHERE seq > ? ORDER BY seq", (after_seq,))
    for change in log:
        image_id, last = int(change["image_id"]), int(change["seq"])
        if change["op"] == "add":
            pending[image_id] = None
        elif image_id in pending:
            del pending[image_id]
        else:
            removed.append(image_id)
    rows = read.rows_in("SELECT id, embedding FROM images WHERE id IN ({}) ORDER BY id", list(pending))
    ids = [r["id"] for r in rows]
    return ChangeBatch(
        np.array(ids, dtype=np.int64),
        decode_embeddings(ids, [bytes(r["embedding"]) for r in rows], dim),
        removed,
        last,
    )
